"""``python -m discv5``: the same tool as the ``discv5`` console script."""

from discv5._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
