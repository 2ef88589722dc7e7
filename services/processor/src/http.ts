import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { errorMessage, type MetricsRegistry } from '@dwell/runtime';
import { BILLING_DIMENSIONS, billingReport, type BillingDimension, type BillingQuery, type Warehouse } from '@dwell/warehouse';

export interface ProcessorHttpDeps {
  readonly warehouse: Warehouse;
  readonly metrics: MetricsRegistry;
  readonly ready: () => boolean;
}

class BadRequest extends Error {}

/**
 * The processor's HTTP side: health, metrics, the billing API and read-only SQL. In embedded mode
 * the processor owns the ClickHouse data folder, so this is how everyone else reads it.
 */
export function createProcessorHttp(deps: ProcessorHttpDeps): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://processor');
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const fail = (error: unknown): void =>
      json(error instanceof BadRequest || error instanceof RangeError ? 400 : 500, { error: errorMessage(error) });
    switch (url.pathname) {
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      case '/readyz': {
        const ready = deps.ready();
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready' : 'starting');
        return;
      }
      case '/metrics':
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(deps.metrics.render());
        return;
      case '/v1/billing': {
        let query: BillingQuery;
        try {
          query = billingQuery(url.searchParams);
        } catch (error) {
          fail(error);
          return;
        }
        billingReport(deps.warehouse.readOnly(), deps.warehouse.database, query).then((rows) => json(200, rows), fail);
        return;
      }
      case '/v1/sql': {
        const query = url.searchParams.get('query') ?? '';
        if (query.trim() === '') {
          fail(new BadRequest('pass ?query=SELECT …'));
          return;
        }
        // A separate connection on which ClickHouse enforces readonly = 1.
        deps.warehouse
          .readOnly()
          .query({ query, format: 'JSONEachRow' })
          .then((result) => result.json())
          .then((rows) => json(200, rows), (error: unknown) => json(400, { error: errorMessage(error) }));
        return;
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
}

/** `/v1/billing?from=<ms>&to=<ms>&by=ad|campaign|site|user|day|hour&ad=&campaign=&site=&user=` */
export function billingQuery(params: URLSearchParams): BillingQuery {
  const integer = (name: string): number => {
    const raw = params.get(name);
    if (raw === null) throw new BadRequest(`${name} is required (Unix ms)`);
    if (!/^\d+$/.test(raw)) throw new BadRequest(`${name} must be Unix ms, not ${JSON.stringify(raw)}`);
    return Number(raw);
  };
  const by = (params.get('by') ?? 'ad') as BillingDimension;
  if (!BILLING_DIMENSIONS.includes(by)) throw new BadRequest(`by must be one of ${BILLING_DIMENSIONS.join(', ')}`);
  const optional = (name: string): string | undefined => params.get(name) ?? undefined;
  return { fromMs: integer('from'), toMs: integer('to'), by, ad: optional('ad'), campaign: optional('campaign'), site: optional('site'), user: optional('user') };
}
