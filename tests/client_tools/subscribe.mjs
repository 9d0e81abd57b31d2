// The npm graphql-ws client as a web or node app uses it: subscribes once, prints one JSON line per
// thing that happens, and exits when the subscription ends or the socket closes.
// stdin: {"url": "ws://…/graphql", "token": "…", "query": "subscription …", "variables": {…}}
// stdout lines: {"connected": true} | {"next": <execution result>} | {"closed": code, "reason": "…"}
//               | {"error": …} | {"complete": true}
import { createClient } from "graphql-ws";
import WebSocket from "ws"; // node 20 has no global WebSocket (node 22 has)

const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");
let input = "";
for await (const chunk of process.stdin) input += chunk;
const { url, token, query, variables } = JSON.parse(input);

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  retryAttempts: 0, // a refusal must end the run, not be retried
  on: {
    connected: () => say({ connected: true }),
    closed: (event) => say({ closed: event.code, reason: event.reason }),
  },
});

client.subscribe({ query, variables }, {
  next: (result) => say({ next: result }),
  error: (error) => {
    // graphql-ws hands a CloseEvent-like object for a closed socket, a list of GraphQLErrors otherwise.
    say({ error: error && typeof error.code === "number" ? { code: error.code, reason: error.reason } : error });
    client.dispose();
  },
  complete: () => {
    say({ complete: true });
    client.dispose();
  },
});
