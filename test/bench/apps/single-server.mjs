// One node:http server on 127.0.0.1:$PORT. Run alone it is the single-process
// peer; PM2 cluster mode runs it once per instance and shares the port.
import { createServer } from 'node:http';
import { app } from './hello-listener.mjs';

const server = createServer(app).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
process.on('SIGINT', () => process.exit(0));
