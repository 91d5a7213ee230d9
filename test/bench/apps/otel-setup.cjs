// OpenTelemetry as its getting-started guide loads it (`node --require ./instrumentation.js app.js`): the
// NodeSDK with the http instrumentation, every span sampled and batched to an exporter that drops them (the
// bench measures what the instrumentation costs the server, not a collector).
const { NodeSDK, tracing } = require('@opentelemetry/sdk-node');
const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');

const discard = {
  export(spans, done) {
    done({ code: 0 });
  },
  shutdown: () => Promise.resolve(),
};

new NodeSDK({
  serviceName: 'bench-hello',
  spanProcessors: [new tracing.BatchSpanProcessor(discard)],
  instrumentations: [new HttpInstrumentation()],
}).start();
