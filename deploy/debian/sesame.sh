#!/bin/sh
# /usr/bin/sesame in the Debian package: the program in /usr/lib/sesame, run by the system's Node.js (package nodejs).
exec /usr/bin/node /usr/lib/sesame/dist/src/cli.js "$@"
