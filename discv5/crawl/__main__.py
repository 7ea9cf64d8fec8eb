"""``python -m discv5.crawl``: the same as ``discv5 crawl``."""

import sys

from discv5._cli import main

if __name__ == "__main__":
    sys.exit(main(["crawl", *sys.argv[1:]]))
