import { describe, expect, it } from 'vitest';
import { AuditUsageError } from '../audit/exit-codes.js';
import { exportFormat } from './export.js';

describe('dwell export --format', () => {
  it('takes the format asked for, whatever the file is called', () => {
    expect(exportFormat('ndjson', 'evidence.avro')).toBe('ndjson');
    expect(exportFormat('avro', 'evidence.ndjson')).toBe('avro');
  });

  it('without --format, writes NDJSON to a file named .ndjson or .jsonl and Avro otherwise', () => {
    expect(exportFormat(undefined, 'c42-2026-11.ndjson')).toBe('ndjson');
    expect(exportFormat(undefined, '/tmp/EVENTS.JSONL')).toBe('ndjson');
    expect(exportFormat(undefined, 'c42-2026-11.avro')).toBe('avro');
    expect(exportFormat(undefined, 'evidence')).toBe('avro');
    expect(exportFormat(undefined, 'ndjson.avro')).toBe('avro');
  });

  it('refuses a format it does not write, saying which it does', () => {
    expect(() => exportFormat('csv', 'x.csv')).toThrow(AuditUsageError);
    expect(() => exportFormat('csv', 'x.csv')).toThrow('--format must be one of avro, ndjson');
  });
});
