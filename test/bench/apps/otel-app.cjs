// The bench's Express app with OpenTelemetry's http instrumentation loaded first, as its guide has an app do:
// the instrumentation patches `http` as Express requires it. Exported for tsgunicorn.
require('./otel-setup.cjs');

exports.app = require('./express-app.mjs').app;
