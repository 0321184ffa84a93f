import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

// Which addresses a webhook may reach. A job's submitter names the URL, so without this rule
// anyone who can submit a job could make our servers POST to the Redis next to them, a cloud's
// metadata service (credentials) or anything else inside the network. Checked on the URL when a
// job is submitted and again on every address a delivery connects to (DNS answers may change).

const forbidden = new BlockList();
for (const [network, bits] of [
  ['0.0.0.0', 8], // "this network", the unspecified address
  ['10.0.0.0', 8], // RFC 1918
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, with the metadata service at 169.254.169.254
  ['172.16.0.0', 12], // RFC 1918
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16], // RFC 1918
  ['198.18.0.0', 15], // benchmarking, often routed inside networks
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and the broadcast address
] as const) {
  forbidden.addSubnet(network, bits, 'ipv4');
}
for (const [network, bits] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b:1::', 48], // local-use NAT64
  ['fc00::', 7], // unique local, with AWS's metadata service at fd00:ec2::254
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  forbidden.addSubnet(network, bits, 'ipv6');
}

const MAPPED_IPV4 = /^::ffff:(?:0:)?(\d+\.\d+\.\d+\.\d+)$/i;
const MAPPED_IPV4_HEX = /^::ffff:(?:0:)?([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i;

/** The IPv4 address an IPv4-mapped (or -translated) IPv6 address stands for, else the address itself. */
function unmapped(address: string): string {
  const dotted = MAPPED_IPV4.exec(address);
  if (dotted?.[1] !== undefined) return dotted[1];
  const hex = MAPPED_IPV4_HEX.exec(address);
  if (hex?.[1] !== undefined && hex[2] !== undefined) {
    const high = parseInt(hex[1], 16);
    const low = parseInt(hex[2], 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return address;
}

/** Whether a webhook must not connect to `address` (an IPv4 or IPv6 literal) unless private addresses are allowed. */
export function isForbiddenAddress(address: string): boolean {
  const plain = unmapped(address);
  const family = isIP(plain);
  if (family === 0) return true; // not an address: nothing to connect to safely
  return forbidden.check(plain, family === 4 ? 'ipv4' : 'ipv6');
}

/** A webhook URL refused, with the reason a client can act on. */
export class WebhookUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookUrlError';
  }
}

/** The URL if it is one a webhook may name at all (its addresses are checked apart): http(s), no credentials. */
export function parsedWebhookUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new WebhookUrlError('is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new WebhookUrlError('must be an http:// or https:// URL');
  if (url.username !== '' || url.password !== '') throw new WebhookUrlError('must not carry credentials (user:password@)');
  return url;
}

/** The host of a URL as DNS or the socket takes it: without an IPv6 literal's brackets. */
export function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

export type Resolve = (hostname: string) => Promise<{ address: string; family: number }[]>;

export const systemResolve: Resolve = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/**
 * Every address `hostname` stands for, refusing the lot when one of them is forbidden (a name
 * answering both a public and a private address would otherwise reach the private one on some
 * connections) and private addresses are not allowed.
 */
export async function allowedAddresses(hostname: string, allowPrivate: boolean, resolve: Resolve = systemResolve): Promise<{ address: string; family: number }[]> {
  const family = isIP(hostname);
  let addresses: { address: string; family: number }[];
  if (family !== 0) addresses = [{ address: hostname, family }];
  else {
    try {
      addresses = await resolve(hostname);
    } catch (error) {
      throw new WebhookUrlError(`host ${hostname} does not resolve (${(error as { code?: string }).code ?? 'DNS error'})`);
    }
  }
  if (addresses.length === 0) throw new WebhookUrlError(`host ${hostname} does not resolve`);
  if (!allowPrivate) {
    const bad = addresses.find((a) => isForbiddenAddress(a.address));
    if (bad !== undefined) throw new WebhookUrlError(`host ${hostname} resolves to ${bad.address}, a loopback, private, link-local or otherwise internal address`);
  }
  return addresses;
}

/** Checks a webhook URL as a job names it: its form, then where its host resolves now. */
export async function checkWebhookUrl(text: string, allowPrivate: boolean, resolve: Resolve = systemResolve): Promise<URL> {
  const url = parsedWebhookUrl(text);
  await allowedAddresses(hostOf(url), allowPrivate, resolve);
  return url;
}
