// Prints each GraphQL document read from stdin (a JSON array of strings) as graphql-js `print`
// and as @graphql-tools/documents' `printExecutableGraphQLDocument` (graphql-codegen's stable print).
import { parse, print } from 'graphql';
import { printExecutableGraphQLDocument } from '@graphql-tools/documents';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map((text) => {
  const document = parse(text);
  return { print: print(document), stable: printExecutableGraphQLDocument(document) };
});
process.stdout.write(JSON.stringify(out));
