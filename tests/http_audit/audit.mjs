// Runs graphql-http's audit suite against a URL; prints one JSON line per audit.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
const results = await auditServer({ url });
for (const r of results) {
  console.log(JSON.stringify({ id: r.id, name: r.name, status: r.status,
                               reason: r.status === 'ok' ? null : String(r.reason).split('\n')[0] }));
}
