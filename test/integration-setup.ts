/**
 * Vitest global setup for the `integration` project: brings up the real dependencies once for the
 * whole run and hands their addresses to the tests through `inject()`.
 *
 * - `KAFKA_BROKERS` set: use that cluster as it is.
 * - `DWELL_TEST_INFRA=containers` (needs a Docker engine): Kafka and ClickHouse from testcontainers.
 * - otherwise: the real Apache Kafka broker from Maven Central jars (packages/kafka), and ClickHouse
 *   embedded through chDB, opened by each test file in its own process and data folder.
 */
import type { TestProject } from 'vitest/node';
import { startLocalKafka } from '../packages/kafka/src/local-broker.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Comma-separated `host:port` list of the Kafka cluster the tests use. */
    kafkaBrokers: string;
    /** A ClickHouse server's HTTP URL; empty means: use embedded chDB. */
    clickhouseUrl: string;
    clickhouseUser: string;
    clickhousePassword: string;
  }
}

const say = (line: string): void => void process.stderr.write(`[integration] ${line}\n`);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stops: Array<() => Promise<unknown>> = [];
  let brokers = process.env['KAFKA_BROKERS'] ?? '';
  let clickhouseUrl = process.env['CLICKHOUSE_URL'] ?? '';
  let clickhouseUser = process.env['CLICKHOUSE_USER'] ?? 'default';
  let clickhousePassword = process.env['CLICKHOUSE_PASSWORD'] ?? '';

  if (process.env['DWELL_TEST_INFRA'] === 'containers') {
    const { KafkaContainer } = await import('@testcontainers/kafka');
    const { ClickHouseContainer } = await import('@testcontainers/clickhouse');
    if (brokers === '') {
      say('starting Kafka in a container (testcontainers, apache/kafka KRaft)');
      const kafka = await new KafkaContainer('confluentinc/cp-kafka:7.9.1').withKraft().start();
      brokers = `${kafka.getHost()}:${kafka.getMappedPort(9093)}`;
      stops.push(() => kafka.stop());
    }
    if (clickhouseUrl === '') {
      say('starting ClickHouse server in a container (testcontainers)');
      const clickhouse = await new ClickHouseContainer('clickhouse/clickhouse-server:25.8').start();
      clickhouseUrl = clickhouse.getHttpUrl();
      clickhouseUser = clickhouse.getUsername();
      clickhousePassword = clickhouse.getPassword();
      stops.push(() => clickhouse.stop());
    }
  }

  if (brokers === '') {
    const started = Date.now();
    const kafka = await startLocalKafka({ onProgress: (line) => say(line) });
    say(`Kafka ${kafka.version} broker (pid ${kafka.pid}) ready at ${kafka.brokers} in ${Date.now() - started} ms`);
    brokers = kafka.brokers;
    stops.push(() => kafka.stop());
  } else {
    say(`using Kafka at ${brokers}`);
  }
  say(
    clickhouseUrl === ''
      ? 'ClickHouse: embedded chDB, one data folder per test file'
      : `ClickHouse: server at ${clickhouseUrl}`,
  );

  project.provide('kafkaBrokers', brokers);
  project.provide('clickhouseUrl', clickhouseUrl);
  project.provide('clickhouseUser', clickhouseUser);
  project.provide('clickhousePassword', clickhousePassword);

  return async () => {
    for (const stop of stops.reverse()) await stop();
    say('infrastructure stopped');
  };
}
