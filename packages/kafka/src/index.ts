export * from './client.js';
export * from './local-broker.js';
export * from './partitioner.js';
export type {
  Admin,
  Consumer,
  ConsumerConfig,
  EachBatchPayload,
  EachMessagePayload,
  Kafka,
  KafkaMessage,
  Message,
  Producer,
  ProducerConfig,
  RecordMetadata,
} from 'kafkajs';
export { CompressionTypes } from 'kafkajs';
export * from './log-reader.js';
export * from './tail.js';
