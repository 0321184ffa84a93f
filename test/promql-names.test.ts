import { describe, expect, it } from 'vitest';
import { familyOf, namesInQuery, parseScrape } from './support/promql.ts';

// The helpers that find metric and label names in PromQL and in scrapes, for the monitoring tests
// (test/service/monitoring.test.ts): on the shapes our dashboard and alerts use and on the ones a
// naive regex gets wrong (function names, label lists, strings, ranges, modifiers, comments).

const names = (query: string): (string | null)[] => namesInQuery(query).selectors.map((s) => s.name);

describe('namesInQuery', () => {
  it('finds the metric under functions and aggregations, with its matchers and the grouping labels', () => {
    const found = namesInQuery(
      'histogram_quantile(0.95, sum by (le, route) (rate(pixelflow_http_request_duration_seconds_bucket{route!="/jobs/:id/events", job="pixelflow-api"}[$__rate_interval])))',
    );
    expect(found).toEqual({
      selectors: [
        {
          name: 'pixelflow_http_request_duration_seconds_bucket',
          matchers: [
            { label: 'route', op: '!=', value: '/jobs/:id/events' },
            { label: 'job', op: '=', value: 'pixelflow-api' },
          ],
        },
      ],
      groupingLabels: ['le', 'route'],
    });
  });

  it('skips function names, keywords, numbers and durations', () => {
    expect(names('(sum(pixelflow_worker_ready) or vector(0)) == 0')).toEqual(['pixelflow_worker_ready']);
    expect(names('sum(rate(a_total[5m] offset -1h30m)) / ignoring(state) group_left(version) b_info > bool 0.5e1')).toEqual(['a_total', 'b_info']);
    expect(namesInQuery('x and on(instance, job) y unless z').groupingLabels).toEqual(['instance', 'job']);
    expect(names('topk(5, x) + count_values("le", y) - quantile(0.9, z) * atan2(w, v)')).toEqual(['x', 'y', 'z', 'w', 'v']);
    expect(names('max_over_time(deriv(x:recorded:rate5m[5m:1m])[1h:]) @ end()')).toEqual(['x:recorded:rate5m']);
    expect(names('absent(up{job="pixelflow-api"} == 1)')).toEqual(['up']);
    expect(names('m / inf + nan')).toEqual(['m']);
  });

  it('reads no names from strings, comments or grouping lists, whichever side the list is on', () => {
    expect(names('label_replace(up{job="x"}, "dst", "$1", "src", "(sum|rate) by")')).toEqual(['up']);
    expect(names('sum(x) by (le) # and not_a_metric here\n+ sum without (instance) (y)')).toEqual(['x', 'y']);
    expect(namesInQuery('sum(x) by (le) + sum without (instance) (y)').groupingLabels).toEqual(['le', 'instance']);
    expect(names("z{a='single \\' quote', b=`raw \\`}")).toEqual(['z']);
  });

  it('takes a name from __name__ when the selector has braces only', () => {
    expect(namesInQuery('{__name__="pixelflow_sse_streams", job=~"pixelflow-.*"}').selectors).toEqual([
      {
        name: 'pixelflow_sse_streams',
        matchers: [
          { label: '__name__', op: '=', value: 'pixelflow_sse_streams' },
          { label: 'job', op: '=~', value: 'pixelflow-.*' },
        ],
      },
    ]);
    expect(names('{job="a"}')).toEqual([null]);
  });

  it('refuses what it cannot read instead of guessing', () => {
    expect(() => namesInQuery('x{job="a}')).toThrow(/unterminated string/);
    expect(() => namesInQuery('x{job}')).toThrow(/unreadable label matcher/);
    expect(() => namesInQuery('x ? y')).toThrow(/unexpected "\?"/);
  });
});

describe('parseScrape and familyOf', () => {
  const scrape = parseScrape(
    [
      '# HELP h A histogram',
      '# TYPE h histogram',
      'h_bucket{le="1",resolution="8"} 2',
      'h_bucket{le="+Inf",resolution="8"} 3',
      'h_sum{resolution="8"} 1.5',
      'h_count{resolution="8"} 3',
      '# HELP c_total A counter with labels and no series yet',
      '# TYPE c_total counter',
      '# HELP g A gauge',
      '# TYPE g gauge',
      'g{route="/jobs/:id",q="say \\"hi\\", then go"} 1',
      '',
    ].join('\n'),
  );

  it('lists every declared family with its samples and their labels', () => {
    expect([...scrape.keys()]).toEqual(['h', 'c_total', 'g']);
    expect(scrape.get('h')?.samples.map((s) => s.name)).toEqual(['h_bucket', 'h_bucket', 'h_sum', 'h_count']);
    expect(scrape.get('c_total')).toEqual({ type: 'counter', samples: [] });
    expect(scrape.get('g')?.samples[0]?.labels).toEqual({ route: '/jobs/:id', q: 'say "hi", then go' });
  });

  it("resolves a histogram's series to the histogram, and nothing else that is not there", () => {
    expect(familyOf('h_bucket', scrape)?.type).toBe('histogram');
    expect(familyOf('h_count', scrape)?.type).toBe('histogram');
    expect(familyOf('h', scrape)).toBeUndefined(); // selects no series in PromQL
    expect(familyOf('c_total', scrape)?.type).toBe('counter');
    expect(familyOf('g_sum', scrape)).toBeUndefined();
    expect(familyOf('nope', scrape)).toBeUndefined();
  });
});
