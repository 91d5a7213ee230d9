// Hello world as a fetch handler (Request -> Response), for the fetch-interface comparison.
import { countResponse } from './response-counter.mjs';

export default {
  fetch() {
    countResponse();
    return new Response('Hello, World!\n', { headers: { 'Content-Type': 'text/plain' } });
  },
};
