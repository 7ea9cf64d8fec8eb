"""The discv5 crawler: enumerate the DHT and turn what it finds into valid enode URLs.

Run it as ``python -m discv5.crawl`` (the same as ``discv5 crawl``). As a library::

    async with discv5.open_node(listen=("0.0.0.0", 0), maintain=False) as node:
        crawler = Crawler(node, parallel=16)
        outcome = await crawler.run(bootnodes)
        for entry in crawler.frontier.entries():
            print(classify(entry).enode)
"""

from ._bootnodes import MAINNET_V5_BOOTNODES
from ._crawler import Crawler, CrawlOutcome
from ._frontier import CrawlEntry, CrawlStats, EntryState, Frontier
from ._output import (
    Classification,
    NodesFileError,
    classify,
    entry_json,
    iter_nodes_json,
    load_nodes_json,
    nodes_json,
    write_atomic,
)

__all__ = [
    "MAINNET_V5_BOOTNODES",
    "Classification",
    "CrawlEntry",
    "CrawlOutcome",
    "CrawlStats",
    "Crawler",
    "EntryState",
    "Frontier",
    "NodesFileError",
    "classify",
    "entry_json",
    "iter_nodes_json",
    "load_nodes_json",
    "nodes_json",
    "write_atomic",
]
