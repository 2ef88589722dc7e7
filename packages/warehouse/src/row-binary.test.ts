import { describe, expect, it } from 'vitest';
import { IMPRESSION_TYPES, MINUTE_TYPES, RowsEncoder } from './exposure-store.js';
import { readRowBinary, RowBinaryError, RowBinaryWriter } from './row-binary.js';

describe('RowBinaryWriter', () => {
  it('writes what ClickHouse reads: little-endian integers, LEB128-prefixed UTF-8, arrays', () => {
    const out = new RowBinaryWriter(4);
    out.string('ab');
    out.uint8(255);
    out.uint16(0x1234);
    out.uint32(0xdead_beef);
    out.uint64(2 ** 40 + 5);
    out.int64(-2);
    out.strings(['x', 'é']);
    expect(Buffer.from(out.finish()).toString('hex')).toBe(
      [
        '026162', // 'ab'
        'ff',
        '3412',
        'efbeadde',
        '0500000000010000', // 2^40 + 5
        'feffffffffffffff', // -2
        '02', '0178', '02c3a9', // ['x', 'é']: é is two bytes
      ].join(''),
    );
  });

  it('prefixes long and multi-byte strings with their byte length, not their character count', () => {
    const out = new RowBinaryWriter(8);
    const long = 'a'.repeat(200);
    const wide = '€'.repeat(42); // 126 bytes: still one length byte
    const wider = '€'.repeat(43); // 129 bytes: two
    out.string(long);
    out.string(wide);
    out.string(wider);
    out.string('');
    const body = Buffer.from(out.finish());
    expect(body.subarray(0, 2).toString('hex')).toBe('c801'); // 200 in LEB128
    expect(body[202]).toBe(126);
    expect(body.subarray(329, 331).toString('hex')).toBe('8101'); // 129
    expect(readRowBinary(body, ['String', 'String', 'String', 'String'])).toEqual([[long, wide, wider, '']]);
  });

  it('writes a String as its length alone, its bytes following it in the body, as it writes the text', () => {
    const texts = ['', 'ab', '€'.repeat(43), `{"pv":"ü😀"}${'x'.repeat(300)}`];
    const asText = new RowBinaryWriter(4);
    const parts: Uint8Array[] = [];
    for (const text of texts) {
      asText.string(text);
      const bytes = new TextEncoder().encode(text);
      const length = new RowBinaryWriter(1);
      length.stringLength(bytes.length);
      parts.push(length.finish(), bytes);
    }
    const joined = Buffer.concat(parts);
    expect(joined.equals(Buffer.from(asText.finish()))).toBe(true);
    expect(readRowBinary(joined, ['String', 'String', 'String', 'String'])).toEqual([texts]);
  });

  it('refuses numbers its column cannot hold instead of writing other ones', () => {
    const out = new RowBinaryWriter();
    expect(() => out.uint8(256)).toThrow(RowBinaryError);
    expect(() => out.uint16(-1)).toThrow(RowBinaryError);
    expect(() => out.uint32(1.5)).toThrow(RowBinaryError);
    expect(() => out.uint64(2 ** 53)).toThrow(RowBinaryError);
    expect(() => out.int64(Number.NaN)).toThrow(RowBinaryError);
    expect(out.length).toBe(0);
  });

  it('reads back what it wrote, and refuses a truncated body', () => {
    const out = new RowBinaryWriter(1);
    for (let i = 0; i < 1000; i++) {
      out.string(`row-${i}`);
      out.uint64(i * 1_000_003);
      out.int64(1_764_000_000_000 + i);
    }
    const body = out.finish();
    const rows = readRowBinary(body, ['String', 'UInt64', 'Int64']);
    expect(rows).toHaveLength(1000);
    expect(rows[999]).toEqual(['row-999', 999 * 1_000_003, 1_764_000_000_999]);
    expect(() => readRowBinary(body.subarray(0, body.length - 3), ['String', 'UInt64', 'Int64'])).toThrow(
      RowBinaryError,
    );
  });
});

describe('RowsEncoder', () => {
  it('encodes result rows in the tables column order', () => {
    const impressions = new RowsEncoder();
    const minutes = new RowsEncoder();
    const common = {
      site_id: 'site-1',
      page_view_id: 'pv-ü',
      impression_id: 'imp-1',
      user_id: 'user-1',
      ad_id: 'ad-1',
      campaign_id: 'campaign-1',
      rules_version: 1,
    };
    impressions.impression(
      {
        ...common,
        media: 'display',
        width: 300,
        height: 250,
        measurable: true,
        viewable: true,
        billable: false,
        viewable_ms: 0,
        credited_ms: 2500,
        longest_run_ms: 1500,
        flags: ['clock_regression', 'givt_user_agent'],
        first_server_ms: 1_764_000_000_123,
        last_server_ms: 1_764_000_002_623,
      },
      true,
      4_000_000_000_017,
    );
    minutes.minute({ ...common, minute_start_ms: 1_764_000_060_000, viewable_ms: 1500 }, 42);
    const taken = impressions.finish();
    expect(taken.rows).toBe(1);
    expect(readRowBinary(taken.body, IMPRESSION_TYPES)).toEqual([
      ['site-1', 'pv-ü', 'imp-1', 'user-1', 'ad-1', 'campaign-1', 'display', 300, 250, 1, 1, 0, 0, 2500, 1500,
        ['clock_regression', 'givt_user_agent'], 1_764_000_000_123, 1_764_000_002_623, 1, 0, 1, 4_000_000_000_017],
    ]);
    expect(readRowBinary(minutes.finish().body, MINUTE_TYPES)).toEqual([
      ['site-1', 'pv-ü', 'imp-1', 1_764_000_060, 'user-1', 'ad-1', 'campaign-1', 1500, 1, 42],
    ]);
    expect(new RowsEncoder().finish().rows).toBe(0);
  });
});
