import { describe, expect, it } from 'vitest';
import { describeRedisTarget, redisTarget } from '../src/redis.ts';

// Where the services' Redis is, from the common environment, and how log lines name it (the
// connections themselves are tested through a real sentinel in test/cluster/sentinel.test.ts).

describe('the Redis target', () => {
  it('is the URL alone without sentinels, named without its password', () => {
    const target = redisTarget({ REDIS_URL: 'redis://:s3cret@redis.internal:6380/2' });
    expect(target).toEqual({ url: 'redis://:s3cret@redis.internal:6380/2', sentinels: undefined, sentinelName: undefined });
    expect(describeRedisTarget(target)).toBe('Redis at redis://:***@redis.internal:6380/2');
  });

  it('is the sentinels and the primary’s name with them, named by those', () => {
    const sentinels = [
      { host: 'sentinel-1', port: 26379 },
      { host: 'sentinel-2', port: 26379 },
    ];
    const target = redisTarget({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_SENTINELS: sentinels, REDIS_SENTINEL_NAME: 'pf' });
    expect(describeRedisTarget(target)).toBe('the Redis primary pf of the sentinels sentinel-1:26379,sentinel-2:26379');
    expect(describeRedisTarget({ ...target, sentinelName: undefined })).toBe('the Redis primary mymaster of the sentinels sentinel-1:26379,sentinel-2:26379');
  });
});
