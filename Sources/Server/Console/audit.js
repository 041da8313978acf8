// Verifies the audit log in the browser, trusting nothing the server says without proof:
// a checkpoint's Ed25519 signature (C2SP signed note, WebCrypto) and the RFC 9162 §2.1.4.2
// consistency proof between two checkpoints. Each check throws a VerificationError naming the
// text key of what failed.
"use strict";

export class VerificationError extends Error {
  constructor(reason) { super(reason); this.reason = reason; }
}

const encoder = new TextEncoder();

export function bytesToHex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function hexToBytes(hex) {
  if (!/^([0-9a-f]{2})*$/.test(hex)) throw new VerificationError("badProof");
  return Uint8Array.from(hex.match(/../g) || [], (pair) => parseInt(pair, 16));
}

function base64ToBytes(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new VerificationError("badNote");
  return Uint8Array.from(atob(text), (character) => character.charCodeAt(0));
}

async function sha256(...parts) {
  const joined = new Uint8Array(parts.reduce((length, part) => length + part.length, 0));
  let offset = 0;
  for (const part of parts) { joined.set(part, offset); offset += part.length; }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

function equal(left, right) {
  return left.length === right.length && left.every((byte, index) => byte === right[index]);
}

/// Parses a C2SP verifier key `<name>+<key id hex>+<base64(0x01 ‖ public key)>`, checking that the
/// key id is the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
async function parseVerifierKey(verifierKey) {
  // The name has no "+"; the base64 key may.
  const match = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(verifierKey);
  if (!match) throw new VerificationError("badNote");
  const [, name, id, encoded] = match;
  const key = base64ToBytes(encoded);
  if (key.length !== 33 || key[0] !== 1) throw new VerificationError("badNote");
  const publicKey = key.slice(1);
  const digest = await sha256(encoder.encode(name), Uint8Array.of(0x0a, 0x01), publicKey);
  if (bytesToHex(digest.slice(0, 4)) !== id) throw new VerificationError("badNote");
  return { name, id, publicKey };
}

/// Checks a checkpoint note's signature by `verifierKey`; its origin, size and root hash (bytes).
export async function verifyCheckpoint(note, verifierKey) {
  const { name, id, publicKey } = await parseVerifierKey(verifierKey);
  const split = note.indexOf("\n\n");
  if (split < 0) throw new VerificationError("badNote");
  const body = note.slice(0, split + 1);
  const lines = body.split("\n");
  if (lines.length !== 4 || lines[0] !== name || !/^(0|[1-9][0-9]{0,15})$/.test(lines[1])) throw new VerificationError("badNote");
  const root = base64ToBytes(lines[2]);
  if (root.length !== 32) throw new VerificationError("badNote");
  const prefix = "\u2014 " + name + " ";
  const line = note.slice(split + 2).split("\n").find((candidate) => candidate.startsWith(prefix));
  if (!line) throw new VerificationError("badSignature");
  const signed = base64ToBytes(line.slice(prefix.length));
  if (signed.length !== 68 || bytesToHex(signed.slice(0, 4)) !== id) throw new VerificationError("badSignature");
  let key;
  try {
    key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch {
    throw new VerificationError("noWebCrypto");
  }
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, signed.slice(4), encoder.encode(body)))) {
    throw new VerificationError("badSignature");
  }
  return { size: Number(lines[1]), root };
}

/// Checks that the tree of `second` leaves with root `secondRoot` extends the tree of `first`
/// leaves with root `firstRoot`, by the proof's hashes (hex), as RFC 9162 §2.1.4.2 verifies.
export async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
  const fail = () => { throw new VerificationError("badProof"); };
  if (first > second) throw new VerificationError("shrank");
  if (first === second) { if (proof.length !== 0 || !equal(firstRoot, secondRoot)) fail(); return; }
  if (first === 0) { if (proof.length !== 0) fail(); return; }
  if (proof.length === 0) fail();
  const path = proof.map(hexToBytes);
  if (path.some((hash) => hash.length !== 32)) fail();
  // Powers of two are exact in doubles far beyond any log size; halve with Math.floor, since
  // JavaScript's bit operators stop at 32 bits.
  const isPowerOfTwo = (n) => Number.isInteger(Math.log2(n));
  if (isPowerOfTwo(first)) path.unshift(firstRoot);
  const half = (n) => Math.floor(n / 2);
  const odd = (n) => n % 2 === 1;
  let fn = first - 1, sn = second - 1;
  while (odd(fn)) { fn = half(fn); sn = half(sn); }
  let fr = path[0], sr = path[0];
  const node = (left, right) => sha256(Uint8Array.of(1), left, right);
  for (const c of path.slice(1)) {
    if (sn === 0) fail();
    if (odd(fn) || fn === sn) {
      fr = await node(c, fr);
      sr = await node(c, sr);
      while (!odd(fn) && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      sr = await node(sr, c);
    }
    fn = half(fn); sn = half(sn);
  }
  if (!equal(fr, firstRoot) || !equal(sr, secondRoot) || sn !== 0) fail();
}
