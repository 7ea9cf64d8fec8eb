#!/usr/bin/env node
// Breadth-first crawl of a discv5 network using ChainSafe's own library, as a timing baseline.
//
//   node bfs_crawl.mjs --bootnode enr:...  [options]   crawl an existing network on 127.0.0.1
//   node bfs_crawl.mjs --spawn 200         [options]   start harness.mjs with 200 ChainSafe nodes
//                                                      (tables seeded), crawl it, stop it
// Options:
//   --mode adaptive|full   adaptive (default): per node FINDNODE 256, 255, ... down, stop after
//                          --empty-stop (3) empty answers in a row; full: every distance 1..256
//   --concurrency N        nodes crawled at once (default 16)
//   --request-timeout MS   ChainSafe requestTimeout (default 1000); --retries N (default 1)
//   --populate seed|bootstrap   with --spawn: how the network's tables are filled (default seed)
//
// One crawler node is started on 127.0.0.1 (ephemeral port); packets to any other address are
// dropped. Progress goes to stderr; the result is one JSON line on stdout:
//   {"nodes_found", "queried", "unreachable", "requests", "failed_requests", "crawl_s", ...}

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { Discv5, UDPTransportService } from "@chainsafe/discv5";
import { ENR, SignableENR } from "@chainsafe/enr";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { multiaddr } from "@multiformats/multiaddr";

const LOOPBACK = "127.0.0.1";

function parseArgs(argv) {
  const opts = {
    bootnode: null,
    spawn: 0,
    mode: "adaptive",
    concurrency: 16,
    requestTimeout: 1000,
    retries: 1,
    emptyStop: 3,
    populate: "seed",
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--bootnode") opts.bootnode = next();
    else if (a === "--spawn") opts.spawn = Number(next());
    else if (a === "--mode") opts.mode = next();
    else if (a === "--concurrency") opts.concurrency = Number(next());
    else if (a === "--request-timeout") opts.requestTimeout = Number(next());
    else if (a === "--retries") opts.retries = Number(next());
    else if (a === "--empty-stop") opts.emptyStop = Number(next());
    else if (a === "--populate") opts.populate = next();
    else throw new Error(`unknown argument ${a}`);
  }
  if (!opts.bootnode === !opts.spawn) throw new Error("give exactly one of --bootnode or --spawn N");
  if (!["adaptive", "full"].includes(opts.mode)) throw new Error("--mode is adaptive or full");
  if (!["seed", "bootstrap"].includes(opts.populate)) throw new Error("--populate is seed or bootstrap");
  return opts;
}

function log(msg) {
  process.stderr.write(`[bfs_crawl] ${msg}\n`);
}

function isLoopback(enr) {
  try {
    return enr.ip === LOOPBACK && enr.udp !== undefined;
  } catch {
    return false; // e.g. a port ChainSafe cannot read
  }
}

// ---------------------------------------------------------------- optional network via harness

async function spawnNetwork(count, populate) {
  const here = dirname(fileURLToPath(import.meta.url));
  const child = spawn(process.execPath, [join(here, "harness.mjs")], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const rl = createInterface({ input: child.stdout });
  const waiting = new Map();
  let ready;
  const readyP = new Promise((r) => (ready = r));
  rl.on("line", (line) => {
    const msg = JSON.parse(line);
    if (msg.ready) return ready();
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    if (msg.error) w.reject(new Error(msg.error));
    else w.resolve(msg.result);
  });
  let nextId = 1;
  const call = (cmd, args = {}) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      child.stdin.write(JSON.stringify({ id, cmd, ...args }) + "\n");
    });
  await readyP;
  let t = performance.now();
  const { nodes } = await call("start", { count });
  const startS = (performance.now() - t) / 1000;
  t = performance.now();
  let sizes;
  if (populate === "seed") {
    ({ table_sizes: sizes } = await call("seed_tables"));
  } else {
    for (const n of nodes.slice(1)) await call("add_enr", { node: n.index, enr: nodes[0].enr });
    ({ table_sizes: sizes } = await call("bootstrap", { concurrency: 1 }));
  }
  const populateS = (performance.now() - t) / 1000;
  const meanTable = sizes.reduce((a, b) => a + b, 0) / sizes.length;
  log(`spawned ${count} nodes in ${startS.toFixed(2)} s; ${populate} in ${populateS.toFixed(2)} s; mean table ${meanTable.toFixed(1)}`);
  return {
    bootnode: nodes[0].enr,
    info: { spawned: count, start_s: startS, populate, populate_s: populateS, mean_table: meanTable },
    close: async () => {
      await call("stop").catch(() => {});
      child.stdin.end();
      await new Promise((r) => child.once("exit", r));
    },
  };
}

// ------------------------------------------------------------------------------------- crawler

async function startCrawler(opts) {
  const privateKey = await generateKeyPair("secp256k1");
  const enr = SignableENR.createV4(privateKey.raw, { ip: Uint8Array.of(127, 0, 0, 1) });
  const bindAddr = multiaddr(`/ip4/${LOOPBACK}/udp/0`);
  const transport = new UDPTransportService({ bindAddrs: { ip4: bindAddr }, nodeId: enr.nodeId });
  const realSend = transport.send.bind(transport);
  transport.send = async (to, toId, packet) => {
    if (to.toOptions().host !== LOOPBACK) return; // never off this machine
    return realSend(to, toId, packet);
  };
  const discv5 = Discv5.create({
    enr,
    privateKey,
    bindAddrs: { ip4: bindAddr },
    transport,
    config: {
      enrUpdate: false,
      requestTimeout: opts.requestTimeout,
      requestRetries: opts.retries,
    },
  });
  await discv5.start();
  discv5.enr.udp = transport.ip4.socket.address().port;
  return discv5;
}

async function crawl(discv5, bootnodeText, opts) {
  const self = discv5.enr.nodeId;
  const known = new Map(); // nodeId -> ENR
  const queue = [];
  let queried = 0;
  let unreachable = 0;
  let requests = 0;
  let failedRequests = 0;
  let nonLoopback = 0;
  const failures = {};

  const offer = (enr) => {
    if (enr.nodeId === self) return;
    const old = known.get(enr.nodeId);
    if (old && old.seq >= enr.seq) return;
    if (!isLoopback(enr)) {
      nonLoopback++;
      return;
    }
    known.set(enr.nodeId, enr);
    if (!old) queue.push(enr);
  };
  offer(ENR.decodeTxt(bootnodeText));

  const ask = async (enr, distances) => {
    requests++;
    try {
      return await discv5.sendFindNode(enr, distances);
    } catch (e) {
      failedRequests++;
      const why = (e && e.code) || (e && e.message) || String(e);
      failures[why] = (failures[why] ?? 0) + 1;
      return null;
    }
  };

  const visit = async (enr) => {
    queried++;
    if (opts.mode === "full") {
      let answered = false;
      for (let d = 256; d >= 1; d--) {
        const got = await ask(enr, [d]);
        if (got === null) {
          if (!answered) break; // first request failed: give the node up
          continue;
        }
        answered = true;
        got.forEach(offer);
      }
      if (!answered) unreachable++;
      return;
    }
    let empty = 0;
    for (let d = 256; d >= 1 && empty < opts.emptyStop; d--) {
      const got = await ask(enr, [d]);
      if (got === null) {
        if (d === 256) unreachable++;
        return;
      }
      if (got.length === 0) empty++;
      else empty = 0;
      got.forEach(offer);
    }
  };

  const t0 = performance.now();
  let active = 0;
  await new Promise((resolve) => {
    const pump = () => {
      while (active < opts.concurrency && queue.length) {
        const enr = queue.shift();
        active++;
        visit(enr).finally(() => {
          active--;
          if (queried % 50 === 0) log(`queried ${queried}, known ${known.size}`);
          pump();
        });
      }
      if (active === 0 && queue.length === 0) resolve();
    };
    pump();
  });
  const crawlS = (performance.now() - t0) / 1000;
  return {
    nodes_found: known.size,
    queried,
    unreachable,
    requests,
    failed_requests: failedRequests,
    failure_reasons: failures,
    ignored_non_loopback: nonLoopback,
    crawl_s: crawlS,
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const network = opts.spawn ? await spawnNetwork(opts.spawn, opts.populate) : null;
  const discv5 = await startCrawler(opts);
  try {
    const result = await crawl(discv5, network ? network.bootnode : opts.bootnode, opts);
    const out = {
      ...result,
      mode: opts.mode,
      concurrency: opts.concurrency,
      ...(network ? network.info : {}),
    };
    process.stdout.write(JSON.stringify(out) + "\n");
  } finally {
    await discv5.stop();
    if (network) await network.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    log(`error: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
