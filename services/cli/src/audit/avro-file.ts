/**
 * Avro object container files of stored events (`dwell export --format avro`): the PageEvent
 * writer schema in the header, deflate-compressed blocks, readable by any Avro tool
 * (`avro-tools tojson`, fastavro, Spark). dwell's own metadata rides in extra header keys.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import avsc from 'avsc';
import { currentSchema, type PageEvent } from '@dwell/protocol';

/** The four bytes every Avro object container file starts with. */
export const AVRO_CONTAINER_MAGIC = Buffer.from([0x4f, 0x62, 0x6a, 0x01]); // "Obj\x01"

/** Header keys dwell adds (besides `avro.schema` and `avro.codec`). */
export const EXPORT_METADATA = {
  /** JSON `[{partition, events, first_offset, last_offset}]`: the file holds each partition's events in this order. */
  partitions: 'dwell.partitions',
  /** JSON: how the file was made (scope, code, rules, schema fingerprint, counts). */
  manifest: 'dwell.manifest',
} as const;

export interface ExportPartition {
  readonly partition: number;
  readonly events: number;
  readonly first_offset: string | null;
  readonly last_offset: string | null;
}

export async function isAvroContainer(path: string): Promise<boolean> {
  const stream = createReadStream(path, { start: 0, end: 3 });
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).equals(AVRO_CONTAINER_MAGIC);
}

/** Writes PageEvents into a container file, with backpressure. */
export class AvroEventWriter {
  private readonly encoder: avsc.streams.BlockEncoder;
  private readonly done: Promise<void>;

  private constructor(path: string, metadata: Readonly<Record<string, string>>) {
    const schema = currentSchema('PageEvent');
    const options = {
      codec: 'deflate',
      metadata: Object.fromEntries(Object.entries(metadata).map(([key, value]) => [key, Buffer.from(value, 'utf8')])),
    };
    // avsc's typings omit `metadata`, which its BlockEncoder supports.
    this.encoder = new avsc.streams.BlockEncoder(schema.type as unknown as avsc.Schema, options as Partial<avsc.EncoderOptions>);
    const file = createWriteStream(path);
    this.encoder.pipe(file);
    this.done = finished(file);
  }

  static open(path: string, metadata: Readonly<Record<string, string>>): AvroEventWriter {
    return new AvroEventWriter(path, metadata);
  }

  async write(event: PageEvent): Promise<void> {
    if (!this.encoder.write(event)) await once(this.encoder, 'drain');
  }

  async close(): Promise<void> {
    this.encoder.end();
    await this.done;
  }
}

/** Opens a container file: its header metadata (text) and its records, decoded with the file's writer schema. */
export async function openAvroEvents(path: string): Promise<{ metadata: ReadonlyMap<string, string>; records: AsyncIterable<unknown> }> {
  const decoder = avsc.createFileDecoder(path);
  const [, , header] = (await once(decoder, 'metadata')) as [unknown, string, { meta: Record<string, Buffer> }];
  const metadata = new Map(Object.entries(header.meta).map(([key, value]) => [key, value.toString('utf8')]));
  return { metadata, records: decoder as AsyncIterable<unknown> };
}
