// The same Express app as a server script: it ends in its own listen(), as Express's guide writes it.
import { app } from './express-app.mjs';

app.listen(3000);
