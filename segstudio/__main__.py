import signal
import sys

try:
    from segstudio.cli import main
except KeyboardInterrupt:  # Ctrl+C during the first import: one line, as main() does later
    print("segstudio: cancelled", file=sys.stderr)
    sys.exit(130)

code = main()
# The work is done and reported; a Ctrl+C while the interpreter shuts down would only turn the exit
# status into a death by signal (-2) with nothing printed.
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(code)
