// Prometheus text exposition of metric families given in the JSON form of
// prom-client's getMetricsAsJSON(). The only module of the master that loads
// prom-client (about 20 MB resident): the aggregator imports it on the first
// scrape, so a master that nobody scrapes never pays for it.
import { AggregatorRegistry, type PrometheusContentType } from 'prom-client';
import type { SnapshotMetric } from './family.js';

/** The families as text, in the order given; each family's series must already be distinct. */
export function renderExposition(families: SnapshotMetric[]): Promise<string> {
  return AggregatorRegistry.aggregate<PrometheusContentType>([families]).metrics();
}
