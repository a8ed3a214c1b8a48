// The forward path's nft rules: sesame's prerouting chain, which checks published (pre-DNAT) ports with the same grants, marks and cuts as the input chain. Text built only from what nft-rules.ts has already checked; nothing here runs nft.
/**
 * The forward path: ports as the client addressed them on this host, checked in prerouting at priority -150, after
 * conntrack (-200) and before any DNAT. NAT chains all run from the one nat hook at -100, whatever their own priority
 * (the kernel refuses nat chains at -200 or below), so `th dport` here is the published port, wherever DNAT sends the
 * connection: a container, a VM, or a local port (REDIRECT). A drop in any base chain is final, so accepts in Docker's
 * `ip filter FORWARD` / `DOCKER-USER` cannot undo it; sesame's accepts are not final and bypass nothing of theirs.
 * Grants, marks, cuts and admitted connections are the same maps and sets as the input chain's, so a grant opens both
 * paths, and revocation and `grant close` cut forwarded connections too. Only packets addressed to this host
 * (`fib daddr type local`, as Docker's own DNAT rule matches) are checked: traffic routed through is not sesame's.
 */
export function forwardPathRules(t: string, ports: readonly string[]): string[] {
  const rule = (r: string): string => `add rule ${t} prerouting ${r}`;
  return [
    `add set ${t} published { type inet_proto . inet_service; }`,
    `add chain ${t} prerouting { type filter hook prerouting priority -150; policy accept; }`,
    `flush chain ${t} prerouting`,
    rule('iif "lo" accept'),
    rule('ct mark @revoked meta l4proto . th dport @published drop'),
    rule('ct id @cut drop'),
    rule('ct state established,related accept'),
    // Everything else leaves at once: a port not published here, or a packet not addressed to this host (one FIB lookup, only for published ports).
    rule('meta l4proto . th dport != @published accept'),
    rule('fib daddr type != local accept'),
    rule('ct state new ct mark set ip saddr . meta l4proto . th dport map @allow4'),
    rule('ct state new ct mark set ip6 saddr . meta l4proto . th dport map @allow6'),
    rule('ct state new ip saddr . meta l4proto . th dport @allow4 add @admitted4 { ct id . ip saddr . ct mark }'),
    rule('ct state new ip6 saddr . meta l4proto . th dport @allow6 add @admitted6 { ct id . ip6 saddr . ct mark }'),
    rule('ip saddr . meta l4proto . th dport @allow4 accept'),
    rule('ip6 saddr . meta l4proto . th dport @allow6 accept'),
    rule('meta l4proto tcp ip saddr . th sport . th dport @preexisting4 accept'),
    rule('meta l4proto tcp ip6 saddr . th sport . th dport @preexisting6 accept'),
    rule('drop'),
    `flush set ${t} published`,
    ...(ports.length > 0 ? [`add element ${t} published { ${ports.join(', ')} }`] : []),
  ];
}
