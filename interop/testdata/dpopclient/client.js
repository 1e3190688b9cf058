// A DPoP client made with the npm package dpop (RFC 9449), which tokenward
// did not write, for interop/dpop_test.go. It makes one key pair for the
// JWS algorithm given as its argument and prints "JKT <thumbprint>" (the
// package's own RFC 7638 thumbprint). Then, for each JSON line on stdin,
// {"htm", "htu", "token", "nonce"}, it prints one proof line.
import { createInterface } from 'node:readline';
import { generateKeyPair, generateProof, calculateThumbprint } from 'dpop';

const keypair = await generateKeyPair(process.argv[2]);
console.log('JKT ' + await calculateThumbprint(keypair.publicKey));
for await (const line of createInterface({ input: process.stdin })) {
  const q = JSON.parse(line);
  console.log(await generateProof(keypair, q.htu, q.htm, q.nonce || undefined, q.token));
}
