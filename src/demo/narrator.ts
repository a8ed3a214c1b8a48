// The demo's narration: one plain line per step; on a TTY a step that waits shows a spinner until its result replaces it. Writes to stdout only.

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** Plain lines; on a TTY, a step that waits shows a spinner until its result replaces it. */
export class Narrator {
  private open: string | undefined;
  private status = '';
  private frame = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly tty: boolean;

  constructor() {
    this.tty = process.stdout.isTTY === true;
  }

  line(text: string): void {
    this.interrupt();
    process.stdout.write(`${text}\n`);
  }

  begin(text: string): void {
    this.interrupt();
    this.open = text;
    if (!this.tty) {
      process.stdout.write(`${text} ... `);
      return;
    }
    this.timer = setInterval(() => this.draw(), 80);
    this.draw();
  }

  /** Extra text after the spinner (a countdown); TTY only. */
  progress(status: string): void {
    this.status = status;
  }

  end(result: string): void {
    if (this.open === undefined) return this.line(result);
    clearInterval(this.timer);
    process.stdout.write(this.tty ? `\r\x1b[K${this.open} ... ${result}\n` : `${result}\n`);
    this.open = undefined;
    this.status = '';
  }

  /** Ends an open line without a result (failure, Ctrl-C). */
  interrupt(): void {
    if (this.open === undefined) return;
    clearInterval(this.timer);
    process.stdout.write(this.tty ? `\r\x1b[K${this.open} ...\n` : '\n');
    this.open = undefined;
    this.status = '';
  }

  /** One physical line, cut to the terminal's width: a wrapped line could not be redrawn in place. */
  private draw(): void {
    this.frame = (this.frame + 1) % SPINNER.length;
    const tail = ` ... ${SPINNER[this.frame] ?? ''} ${this.status}`;
    const room = Math.max(10, (process.stdout.columns || 80) - tail.length - 1);
    const text = this.open ?? '';
    process.stdout.write(`\r\x1b[K${text.length > room ? `${text.slice(0, room - 1)}…` : text}${tail}`);
  }
}
