import { describe, expect, it } from 'vitest';
import { checkWebhookUrl, isForbiddenAddress, WebhookUrlError } from '../src/address-policy.ts';

describe('isForbiddenAddress', () => {
  it.each([
    '127.0.0.1',
    '127.255.0.9',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '169.254.0.7',
    '100.64.0.1',
    '100.127.255.254',
    '0.0.0.0',
    '224.0.0.251',
    '255.255.255.255',
    '::',
    '::1',
    'fc00::1',
    'fd00:ec2::254',
    'fe80::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:169.254.169.254',
    '::ffff:7f00:1',
    '::ffff:a00:1',
  ])('refuses %s', (address) => {
    expect(isForbiddenAddress(address)).toBe(true);
  });

  it.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '100.128.0.1', '169.255.0.1', '2606:4700::1111', '::ffff:8.8.8.8'])('allows %s', (address) => {
    expect(isForbiddenAddress(address)).toBe(false);
  });
});

describe('checkWebhookUrl', () => {
  const publicDns = async (): Promise<{ address: string; family: number }[]> => [{ address: '93.184.216.34', family: 4 }];

  it.each([
    ['ftp://example.com/x', /http/],
    ['not a url', /not a URL/],
    ['https://user:pw@example.com/x', /credentials/],
    ['http://127.0.0.1:8080/x', /127\.0\.0\.1/],
    ['http://2130706433/x', /127\.0\.0\.1/],
    ['http://[::1]/x', /::1/],
    ['http://[::ffff:127.0.0.1]/x', /internal/],
    ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254/],
    ['http://[fd00:ec2::254]/', /fd00:ec2::254/],
    ['http://100.64.1.1/', /internal/],
    ['http://10.0.0.5/', /internal/],
  ])('refuses %s', async (url, reason) => {
    await expect(checkWebhookUrl(url, false, publicDns)).rejects.toThrow(reason);
    await expect(checkWebhookUrl(url, false, publicDns)).rejects.toBeInstanceOf(WebhookUrlError);
  });

  it('refuses a name the system resolver answers with loopback (localhost)', async () => {
    await expect(checkWebhookUrl('http://localhost:9/x', false)).rejects.toThrow(/localhost resolves to/);
  });

  it('refuses a name when any one of its addresses is private', async () => {
    const mixed = async (): Promise<{ address: string; family: number }[]> => [
      { address: '93.184.216.34', family: 4 },
      { address: '10.0.0.1', family: 4 },
    ];
    await expect(checkWebhookUrl('https://hooks.example.com/x', false, mixed)).rejects.toThrow(/10\.0\.0\.1/);
  });

  it('refuses a name that does not resolve', async () => {
    const nxdomain = async (): Promise<never> => {
      throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
    };
    await expect(checkWebhookUrl('https://nowhere.example/x', false, nxdomain)).rejects.toThrow(/does not resolve \(ENOTFOUND\)/);
  });

  it('accepts public addresses, and private ones when they are allowed', async () => {
    expect((await checkWebhookUrl('https://hooks.example.com/x?a=1', false, publicDns)).href).toBe('https://hooks.example.com/x?a=1');
    expect((await checkWebhookUrl('http://localhost:9/x', true)).hostname).toBe('localhost');
    expect((await checkWebhookUrl('http://[::1]:9/x', true)).hostname).toBe('[::1]');
  });
});
