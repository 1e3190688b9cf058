// A DPoP client for interop/dpop_test.go: it makes keys and proofs with
// panva's npm package dpop (RFC 9449), 2.x ("dpop") and 1.x ("dpop1"), so
// that the proofs tokenward checks are made by an implementation we did not
// write. One JSON request per line on stdin, one JSON answer per line on
// stdout:
//
//   {"id":1,"op":"key","lib":"dpop","alg":"ES256"}
//     -> {"id":1,"key":"k1","jkt":"<RFC 7638 thumbprint, by dpop 2.x>"}
//   {"id":2,"op":"proof","key":"k1","htm":"GET","htu":"https://...","nonce":"...","token":"..."}
//     -> {"id":2,"proof":"<compact JWS>"}
//
// Errors come back as {"id":N,"error":"..."}.
import * as dpop2 from 'dpop'
import dpop1, { generateKeyPair as generateKeyPair1 } from 'dpop1'
import { createInterface } from 'node:readline'

const keys = new Map()

async function handle(req) {
  switch (req.op) {
    case 'key': {
      let kp
      if (req.lib === 'dpop1') {
        kp = await generateKeyPair1(req.alg)
      } else {
        kp = await dpop2.generateKeyPair(req.alg)
      }
      const name = `k${keys.size + 1}`
      keys.set(name, { lib: req.lib, kp })
      return { key: name, jkt: await dpop2.calculateThumbprint(kp.publicKey) }
    }
    case 'proof': {
      const k = keys.get(req.key)
      if (!k) throw new Error(`no key ${req.key}`)
      const make = k.lib === 'dpop1' ? dpop1 : dpop2.generateProof
      return { proof: await make(k.kp, req.htu, req.htm, req.nonce || undefined, req.token || undefined) }
    }
  }
  throw new Error(`unknown op ${req.op}`)
}

const rl = createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  let req = {}
  try {
    req = JSON.parse(line)
    const out = await handle(req)
    process.stdout.write(JSON.stringify({ id: req.id, ...out }) + '\n')
  } catch (e) {
    process.stdout.write(JSON.stringify({ id: req.id, error: String(e && e.stack || e) }) + '\n')
  }
})
