// Hello world as an Express app, exported: the same response every server in the bench sends.
import express from 'express';
import { countResponse } from './response-counter.mjs';

const body = 'Hello, World!\n';

export const app = express();
app.get('/', (req, res) => {
  countResponse();
  res.set('Content-Type', 'text/plain').send(body);
});
