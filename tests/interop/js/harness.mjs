#!/usr/bin/env node
// Interop harness: runs one or many ChainSafe discv5 (TypeScript) nodes in this process, every one
// bound to 127.0.0.1 only, driven by newline-delimited JSON on stdin/stdout.
//
// Protocol (one JSON object per line):
//   request : {"id": <any>, "cmd": "<name>", ...arguments}
//   reply   : {"id": <same>, "result": {...}}   or   {"id": <same>, "error": "<message>"}
// At startup the harness prints {"ready": true, ...}. Logs go to stderr only. Requests are
// handled concurrently; replies may come back out of order (match them by "id"). The harness
// exits after "stop" (without "nodes") or when stdin closes.
//
// Commands (all byte strings are lower-case hex without 0x; ENRs are "enr:..." texts):
//   start         {count=1, port=0 | base_port, with_onion3=[i..] | fraction, tcp_port=int|[int]|null,
//                  bootnodes=[enr], private_keys=[hex], config={...}}
//                 -> {nodes: [{index, enr, node_id, ip, udp_port, tcp_port, onion3}]}
//   enr           {node}                       -> {enr}
//   add_enr       {node, enr}                  -> {in_table}
//   ping          {node, enr}                  -> {enr_seq, ip, port}
//   find_node     {node, enr, distances}       -> {enrs}
//   lookup        {node, target_node_id, limit=16} -> {enrs}  (closest first)
//   talk          {node, enr, protocol | protocol_hex, payload}      -> {response}
//   register_talk {node | nodes, protocol | protocol_hex, response}  (response null: stay silent)
//   talk_requests {node}                       -> {requests: [{from_node_id, protocol, payload}]}
//   known_enrs    {node}                       -> {enrs}
//   seed_tables   {nodes=all, from=all}        -> {table_sizes}   (addEnr of every "from" record;
//                                                                  silent: no packets)
//   bootstrap     {nodes=all, concurrency=1}   -> {table_sizes}   (a self-lookup on each node)
//   stop          {nodes?}                     -> {stopped}; without "nodes" the harness exits.

import { createInterface } from "node:readline";
import { createHash, generateKeyPairSync } from "node:crypto";
import * as dgram from "node:dgram";
import { Discv5, UDPTransportService } from "@chainsafe/discv5";
import { ENR, SignableENR } from "@chainsafe/enr";
import { generateKeyPair, privateKeyFromRaw } from "@libp2p/crypto/keys";
import { multiaddr } from "@multiformats/multiaddr";

const LOOPBACK = "127.0.0.1";
const LOOPBACK_BYTES = Uint8Array.of(127, 0, 0, 1);
const START_TIMEOUT_MS = 20_000;
const TALK_LOG_LIMIT = 1000;

/** @type {Array<{index: number, discv5: Discv5, talk: Map<string, Uint8Array|null>, talkLog: object[], onion3: string|null, stopped: boolean}>} */
const nodes = [];

function log(...args) {
  process.stderr.write(`[harness] ${args.join(" ")}\n`);
}

function send(obj) {
  process.stdout.write(
    JSON.stringify(obj, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n",
  );
}

// ---------------------------------------------------------------------------- encoding helpers

function toHex(bytes) {
  return Buffer.from(bytes).toString("hex");
}

function fromHex(text, what) {
  if (typeof text !== "string" || !/^([0-9a-fA-F]{2})*$/.test(text)) {
    throw new Error(`${what} must be a hex string, got ${JSON.stringify(text)}`);
  }
  return Uint8Array.from(Buffer.from(text, "hex"));
}

const BASE32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";

function base32Lower(bytes) {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** A fresh, valid Tor v3 onion address (rend-spec-v3) for a newly generated ed25519 key. */
function newOnion3Address() {
  const { publicKey } = generateKeyPairSync("ed25519");
  const pub = Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url");
  if (pub.length !== 32) throw new Error("unexpected ed25519 public key length");
  const version = Buffer.of(0x03);
  const checksum = createHash("sha3-256")
    .update(Buffer.concat([Buffer.from(".onion checksum", "ascii"), pub, version]))
    .digest()
    .subarray(0, 2);
  return base32Lower(Buffer.concat([pub, checksum, version])) + ".onion";
}

/**
 * A port as an RLP integer: big-endian without leading zeros, as EIP-778/geth write it.
 * (ChainSafe's own setters always write 2 bytes, and its getters throw on fewer than 2, so a
 * port below 256 written canonically cannot be read back through `enr.tcp`/`enr.udp`.)
 */
function portBytes(port) {
  if (port === 0) return new Uint8Array(0);
  return port < 256 ? Uint8Array.of(port) : Uint8Array.of((port >> 8) & 0xff, port & 0xff);
}

function portFromBytes(raw) {
  if (raw === undefined) return null;
  let value = 0;
  for (const byte of raw) value = value * 256 + byte;
  return value;
}

// ------------------------------------------------------------------------------ argument checks

function getNode(args) {
  const i = args.node;
  if (!Number.isInteger(i) || i < 0 || i >= nodes.length) {
    throw new Error(`no node with index ${JSON.stringify(i)} (have ${nodes.length})`);
  }
  const n = nodes[i];
  if (!n) throw new Error(`node ${i} is still starting`);
  if (n.stopped) throw new Error(`node ${i} is stopped`);
  return n;
}

/** Decode an ENR text and refuse anything that would make us send packets off 127.0.0.1. */
function loopbackEnr(text) {
  if (typeof text !== "string") throw new Error("enr must be an 'enr:...' string");
  const enr = ENR.decodeTxt(text);
  if (enr.ip !== LOOPBACK || enr.udp === undefined) {
    throw new Error(
      `refusing ENR whose ip/udp is not 127.0.0.1:<port> (ip=${enr.ip}, udp=${enr.udp})`,
    );
  }
  return enr;
}

function protocolBytes(args) {
  if (args.protocol_hex !== undefined) return fromHex(args.protocol_hex, "protocol_hex");
  if (typeof args.protocol === "string") return new TextEncoder().encode(args.protocol);
  throw new Error("need 'protocol' (text) or 'protocol_hex'");
}

function onion3Indexes(spec, count) {
  if (spec === undefined || spec === null || spec === false) return new Set();
  if (spec === true) return new Set([...Array(count).keys()]);
  if (Array.isArray(spec)) {
    for (const i of spec) {
      if (!Number.isInteger(i) || i < 0 || i >= count) {
        throw new Error(`with_onion3 index ${i} out of range 0..${count - 1}`);
      }
    }
    return new Set(spec);
  }
  if (typeof spec === "number" && spec >= 0 && spec <= 1) {
    // evenly spread: node i is onion when floor((i+1)*f) > floor(i*f)
    const out = new Set();
    for (let i = 0; i < count; i++) {
      if (Math.floor((i + 1) * spec) > Math.floor(i * spec)) out.add(i);
    }
    return out;
  }
  throw new Error("with_onion3 must be a list of indexes, a fraction in [0, 1] or a boolean");
}

async function checkPortFree(port) {
  const sock = dgram.createSocket("udp4");
  try {
    await new Promise((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(port, LOOPBACK, resolve);
    });
  } finally {
    await new Promise((resolve) => sock.close(() => resolve()));
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function describeError(e) {
  if (e && typeof e === "object") {
    const code = e.code ? ` (${e.code})` : "";
    return `${e.message ?? String(e)}${code}`;
  }
  return String(e);
}

// ----------------------------------------------------------------------------------- node setup

async function startOne(index, opts) {
  const privateKey = opts.privateKeyHex
    ? privateKeyFromRaw(fromHex(opts.privateKeyHex, "private key"))
    : await generateKeyPair("secp256k1");
  if (privateKey.type !== "secp256k1") throw new Error("private keys must be 32-byte secp256k1");

  const kvs = { ip: LOOPBACK_BYTES };
  if (opts.port !== 0) kvs.udp = portBytes(opts.port);
  let onion3 = null;
  if (opts.onion) {
    onion3 = newOnion3Address();
    const tcpPort = opts.tcpPort ?? opts.port; // 0: the udp port, known once bound
    if (tcpPort !== 0) kvs.tcp = portBytes(tcpPort);
    kvs.onion3 = new TextEncoder().encode(onion3);
  }
  // seq 1, signed lazily by SignableENR on first encode; set()/setters bump seq and re-sign.
  const enr = SignableENR.createV4(privateKey.raw, kvs);

  const bindAddr = multiaddr(`/ip4/${LOOPBACK}/udp/${opts.port}`);
  const transport = new UDPTransportService({ bindAddrs: { ip4: bindAddr }, nodeId: enr.nodeId });
  const realSend = transport.send.bind(transport);
  transport.send = async (to, toId, packet) => {
    const host = to.toOptions().host;
    if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) {
      log(`node ${index}: dropped a packet to non-loopback ${host}`);
      return;
    }
    return realSend(to, toId, packet);
  };

  if (opts.port !== 0) await checkPortFree(opts.port);
  const discv5 = Discv5.create({
    enr,
    privateKey,
    bindAddrs: { ip4: bindAddr },
    transport,
    // enrUpdate off: PONG address votes must never rewrite the record under test.
    // lookupNumResults high: ChainSafe's lookup sorts its peers with a broken comparator (the
    // order comes out as reverse discovery order) and then keeps the first lookupNumResults,
    // so with its default of 16 the closest peers are the ones dropped. Keeping all of them
    // lets runLookup() pick the really closest ones. (Its lookups query every peer they learn
    // of either way: the "enough results" early exit never triggers.)
    config: { enrUpdate: false, lookupNumResults: 100000, ...opts.config },
  });
  await withTimeout(discv5.start(), START_TIMEOUT_MS, `starting node ${index}`);
  if (opts.port === 0) {
    const actual = transport.ip4.socket.address().port;
    discv5.enr.udp = actual; // each setter bumps seq and drops the signature (re-signed lazily)
    if (opts.onion && (opts.tcpPort ?? 0) === 0) discv5.enr.tcp = actual;
  }

  const node = { index, discv5, talk: new Map(), talkLog: [], onion3, stopped: false };
  discv5.on("talkReqReceived", (nodeAddr, _enr, message) => {
    const protoHex = toHex(message.protocol);
    node.talkLog.push({
      from_node_id: nodeAddr.nodeId,
      protocol: protoHex,
      payload: toHex(message.request),
    });
    if (node.talkLog.length > TALK_LOG_LIMIT) node.talkLog.shift();
    // ChainSafe itself never answers TALKREQ; discv5.1 says an unknown protocol gets an empty
    // TALKRESP, so that is our default. A protocol registered with response null stays silent.
    const response = node.talk.has(protoHex) ? node.talk.get(protoHex) : new Uint8Array(0);
    if (response === null) return;
    discv5.sendTalkResp(nodeAddr, message.id, response).catch((e) => {
      log(`node ${index}: TALKRESP failed: ${describeError(e)}`);
    });
  });
  for (const boot of opts.bootnodes) discv5.addEnr(loopbackEnr(boot));
  return node;
}

function describeNode(n) {
  const enr = n.discv5.enr;
  return {
    index: n.index,
    enr: enr.encodeTxt(),
    node_id: enr.nodeId,
    ip: enr.ip,
    udp_port: portFromBytes(enr.kvs.get("udp")),
    tcp_port: portFromBytes(enr.kvs.get("tcp")),
    onion3: n.onion3,
    seq: enr.seq,
  };
}

// ------------------------------------------------------------------------------------- commands

const commands = {
  async start(args) {
    const count = args.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > 5000) {
      throw new Error("count must be an integer in 1..5000");
    }
    if (args.port !== undefined && args.base_port !== undefined) {
      throw new Error("give either port (0 = ephemeral) or base_port, not both");
    }
    let ports;
    if (args.base_port !== undefined) {
      if (!Number.isInteger(args.base_port) || args.base_port < 1 || args.base_port + count > 65536) {
        throw new Error("base_port out of range");
      }
      ports = Array.from({ length: count }, (_, i) => args.base_port + i);
    } else {
      const p = args.port ?? 0;
      if (p !== 0 && count !== 1) throw new Error("a fixed port needs count 1; use base_port");
      if (!Number.isInteger(p) || p < 0 || p > 65535) throw new Error("port out of range");
      ports = Array.from({ length: count }, () => p);
    }
    const onion = onion3Indexes(args.with_onion3, count);
    const tcp = args.tcp_port ?? null;
    if (Array.isArray(tcp) && tcp.length !== count) throw new Error("tcp_port list needs count entries");
    const keys = args.private_keys ?? null;
    if (keys !== null && (!Array.isArray(keys) || keys.length !== count)) {
      throw new Error("private_keys needs count entries");
    }
    const bootnodes = args.bootnodes ?? [];
    for (const b of bootnodes) loopbackEnr(b); // validate before starting anything
    const config = args.config ?? {};

    const first = nodes.length;
    const slots = Array.from({ length: count }, (_, i) => first + i);
    // reserve the indexes now so concurrent starts cannot interleave
    for (const i of slots) nodes[i] = null;
    const started = await Promise.allSettled(
      slots.map((index, i) =>
        startOne(index, {
          port: ports[i],
          onion: onion.has(i),
          tcpPort: Array.isArray(tcp) ? tcp[i] : tcp,
          privateKeyHex: keys ? keys[i] : null,
          bootnodes,
          config,
        }),
      ),
    );
    const failures = [];
    started.forEach((r, i) => {
      if (r.status === "fulfilled") nodes[slots[i]] = r.value;
      else {
        nodes[slots[i]] = { index: slots[i], discv5: null, stopped: true };
        failures.push(`node ${slots[i]}: ${describeError(r.reason)}`);
      }
    });
    if (failures.length) {
      await Promise.allSettled(
        started.filter((r) => r.status === "fulfilled").map((r) => stopNode(r.value)),
      );
      throw new Error(`start failed: ${failures.slice(0, 5).join("; ")}`);
    }
    return { nodes: slots.map((i) => describeNode(nodes[i])) };
  },

  async enr(args) {
    return { enr: getNode(args).discv5.enr.encodeTxt() };
  },

  async add_enr(args) {
    const n = getNode(args);
    const enr = loopbackEnr(args.enr);
    n.discv5.addEnr(enr);
    return { in_table: n.discv5.getKadValue(enr.nodeId) !== undefined };
  },

  async ping(args) {
    const n = getNode(args);
    const pong = await n.discv5.sendPing(loopbackEnr(args.enr));
    const ip = pong.addr.ip;
    const ipText = ip.type === 4 ? Array.from(ip.octets).join(".") : toHex(ip.octets);
    return { enr_seq: pong.enrSeq, ip: ipText, port: pong.addr.port };
  },

  async find_node(args) {
    const n = getNode(args);
    const distances = args.distances;
    if (!Array.isArray(distances) || !distances.every((d) => Number.isInteger(d) && d >= 0 && d <= 256)) {
      throw new Error("distances must be a list of integers in 0..256");
    }
    const enrs = await n.discv5.sendFindNode(loopbackEnr(args.enr), distances);
    return { enrs: enrs.map((e) => e.encodeTxt()) };
  },

  async lookup(args) {
    const n = getNode(args);
    const target = args.target_node_id;
    if (typeof target !== "string" || !/^[0-9a-fA-F]{64}$/.test(target)) {
      throw new Error("target_node_id must be 64 hex characters");
    }
    const limit = args.limit ?? 16;
    if (!Number.isInteger(limit) || limit < 1) throw new Error("limit must be a positive integer");
    return { enrs: await runLookup(n, target.toLowerCase(), limit) };
  },

  async talk(args) {
    const n = getNode(args);
    const payload = fromHex(args.payload ?? "", "payload");
    const response = await n.discv5.sendTalkReq(loopbackEnr(args.enr), payload, protocolBytes(args));
    return { response: toHex(response) };
  },

  async register_talk(args) {
    const targets = args.nodes === "all"
      ? nodes.filter((n) => n && !n.stopped)
      : Array.isArray(args.nodes)
        ? args.nodes.map((i) => getNode({ node: i }))
        : [getNode(args)];
    const proto = toHex(protocolBytes(args));
    const response = args.response === null ? null : fromHex(args.response ?? "", "response");
    for (const n of targets) n.talk.set(proto, response);
    return { nodes: targets.map((n) => n.index) };
  },

  async talk_requests(args) {
    return { requests: [...getNode(args).talkLog] };
  },

  async known_enrs(args) {
    return { enrs: getNode(args).discv5.kadValues().map((e) => e.encodeTxt()) };
  },

  async seed_tables(args) {
    const targets = Array.isArray(args.nodes)
      ? args.nodes.map((i) => getNode({ node: i }))
      : nodes.filter((n) => n && !n.stopped);
    const sources = Array.isArray(args.from)
      ? args.from.map((i) => getNode({ node: i }))
      : nodes.filter((n) => n && !n.stopped);
    // addEnr inserts as "disconnected": no packets are sent, and a full bucket just refuses.
    const records = sources.map((n) => n.discv5.enr.toENR());
    for (const n of targets) {
      for (const r of records) if (r.nodeId !== n.discv5.enr.nodeId) n.discv5.addEnr(r);
    }
    return { table_sizes: targets.map((n) => n.discv5.kadValues().length) };
  },

  async bootstrap(args) {
    const targets = Array.isArray(args.nodes)
      ? args.nodes.map((i) => getNode({ node: i }))
      : nodes.filter((n) => n && !n.stopped);
    const concurrency = Math.max(1, args.concurrency ?? 1);
    let next = 0;
    const worker = async () => {
      while (next < targets.length) {
        const n = targets[next++];
        try {
          await runLookup(n, n.discv5.enr.nodeId);
        } catch (e) {
          log(`bootstrap lookup on node ${n.index} failed: ${describeError(e)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
    return { table_sizes: targets.map((n) => n.discv5.kadValues().length) };
  },

  async stop(args) {
    const targets = Array.isArray(args.nodes)
      ? args.nodes.map((i) => getNode({ node: i }))
      : nodes.filter((n) => n && !n.stopped);
    await Promise.allSettled(targets.map(stopNode));
    if (!Array.isArray(args.nodes)) shuttingDown = true;
    return { stopped: targets.map((n) => n.index) };
  },
};

/**
 * ChainSafe's iterative lookup, with two ChainSafe quirks smoothed over:
 * - with an empty table it sends nothing but only finishes at `lookupTimeout` (60 s): answer []
 *   at once instead;
 * - its result is not ordered by distance (its sort comparator only ever returns -1): sort the
 *   records that answered by XOR distance to the target and keep the `limit` closest.
 */
async function runLookup(n, targetHex, limit = 16) {
  if (n.discv5.kadValues().length === 0) return [];
  const enrs = await n.discv5.findNode(targetHex);
  const target = BigInt("0x" + targetHex);
  const dist = (e) => BigInt("0x" + e.nodeId) ^ target;
  return enrs
    .map((e) => [dist(e), e.encodeTxt()])
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
    .slice(0, limit)
    .map((pair) => pair[1]);
}

async function stopNode(n) {
  if (!n || n.stopped || !n.discv5) return;
  n.stopped = true;
  await n.discv5.stop();
}

// ----------------------------------------------------------------------------------- main loop

let shuttingDown = false;
const inflight = new Set();

async function handleLine(line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    send({ id: null, error: `bad JSON: ${describeError(e)}` });
    return;
  }
  const id = req && typeof req === "object" ? req.id ?? null : null;
  try {
    if (!req || typeof req !== "object" || Array.isArray(req)) throw new Error("request must be a JSON object");
    const fn = Object.hasOwn(commands, req.cmd) ? commands[req.cmd] : undefined;
    if (!fn) throw new Error(`unknown cmd ${JSON.stringify(req.cmd)}`);
    if (shuttingDown) throw new Error("harness is stopping");
    send({ id, result: await fn(req) });
  } catch (e) {
    send({ id, error: describeError(e) });
  }
  if (shuttingDown && req && req.cmd === "stop") {
    // let stdout drain, then leave
    process.stdout.write("", () => process.exit(0));
  }
}

process.on("uncaughtException", (e) => log(`uncaught exception: ${e && e.stack ? e.stack : e}`));
process.on("unhandledRejection", (e) => log(`unhandled rejection: ${e && e.stack ? e.stack : e}`));

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (!line.trim()) return;
  const p = handleLine(line).finally(() => inflight.delete(p));
  inflight.add(p);
});
rl.on("close", async () => {
  // stdin closed: the controller is gone; stop everything and exit.
  await Promise.allSettled(nodes.filter((n) => n && !n.stopped).map(stopNode));
  process.exit(0);
});

send({ ready: true, pid: process.pid, node: process.version });
