"""``fastblur-gen``: SBDD training pairs (the generation layer lands with its issue)."""
import sys


def main(argv=None):
    print("fastblur-gen: not yet available (SBDD pair generation is being built)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
