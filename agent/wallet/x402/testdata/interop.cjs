// x402 interop counterpart for depai's Go tests: the official TypeScript
// packages (@x402/core, @x402/evm, @x402/express, @x402/fetch 2.27.0, viem)
// as a facilitator, a resource server or a client, on a local anvil chain.
// Nothing here is depai code under test; it is the independent side.
//
//   node interop.cjs facilitator  → HTTP /verify /settle /supported
//   node interop.cjs server       → express paywall at GET /feed
//   node interop.cjs client URL   → fetch URL with payment, print JSON
//   node interop.cjs upto-client URL → the same with the upto scheme
//   node interop.cjs upto-verify  → verify PAYLOAD (an upto payload's JSON)
//                                   with viem and @x402/evm's Permit2 types
//
// Configuration comes from the environment (set by the Go test): RPC,
// CHAIN_ID, KEY (0x private key), TOKEN, PAY_TO, AMOUNT, FACILITATOR.
// Servers listen on 127.0.0.1:0 and print "LISTENING <port>".
"use strict";
const http = require("node:http");
const { createWalletClient, createPublicClient, http: viemHttp, publicActions, defineChain } = require("viem");
const { privateKeyToAccount } = require("viem/accounts");

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`interop.cjs: ${k} is not set`);
  return v;
};

function chain() {
  const id = Number(env("CHAIN_ID"));
  return defineChain({ id, name: "anvil", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [env("RPC")] } } });
}

function listen(server) {
  server.listen(0, "127.0.0.1", () => console.log(`LISTENING ${server.address().port}`));
}

async function facilitator() {
  const { x402Facilitator } = require("@x402/core/facilitator");
  const { ExactEvmScheme } = require("@x402/evm/exact/facilitator");
  const { toFacilitatorEvmSigner } = require("@x402/evm");
  const account = privateKeyToAccount(env("KEY"));
  const client = createWalletClient({ account, chain: chain(), transport: viemHttp(env("RPC")) }).extend(publicActions);
  const signer = toFacilitatorEvmSigner({ ...client, address: account.address });
  const network = `eip155:${env("CHAIN_ID")}`;
  const fac = new x402Facilitator().register(network, new ExactEvmScheme(signer));
  const server = http.createServer(async (req, res) => {
    const send = (code, body) => {
      res.writeHead(code, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
    };
    try {
      if (req.method === "GET" && req.url === "/supported") return send(200, fac.getSupported());
      let raw = "";
      for await (const chunk of req) raw += chunk;
      const body = JSON.parse(raw);
      if (req.method === "POST" && req.url === "/verify") return send(200, await fac.verify(body.paymentPayload, body.paymentRequirements));
      if (req.method === "POST" && req.url === "/settle") return send(200, await fac.settle(body.paymentPayload, body.paymentRequirements));
      send(404, { error: "not found" });
    } catch (e) {
      send(500, { error: String(e && e.stack || e) });
    }
  });
  listen(server);
}

async function server() {
  const express = require("express");
  const { paymentMiddleware, x402ResourceServer } = require("@x402/express");
  const { ExactEvmScheme } = require("@x402/evm/exact/server");
  const { HTTPFacilitatorClient } = require("@x402/core/server");
  const network = `eip155:${env("CHAIN_ID")}`;
  const rs = new x402ResourceServer(new HTTPFacilitatorClient({ url: env("FACILITATOR") })).register(network, new ExactEvmScheme());
  const app = express();
  app.use(paymentMiddleware({
    "GET /feed": {
      accepts: { scheme: "exact", network, payTo: env("PAY_TO"), price: { amount: env("AMOUNT"), asset: env("TOKEN"), extra: { name: "Test USD", version: "2" } }, maxTimeoutSeconds: 60 },
      description: "temperature feed",
      mimeType: "application/json",
    },
  }, rs));
  app.get("/feed", (req, res) => res.json({ sensor: "ts1", celsius: 19.25 }));
  listen(http.createServer(app));
}

async function client(url, scheme) {
  const { wrapFetchWithPaymentFromConfig, decodePaymentResponseHeader } = require("@x402/fetch");
  const { ExactEvmScheme } = require("@x402/evm/exact/client");
  const { UptoEvmScheme } = require("@x402/evm/upto/client");
  const { toClientEvmSigner } = require("@x402/evm");
  const account = privateKeyToAccount(env("KEY"));
  const pub = createPublicClient({ chain: chain(), transport: viemHttp(env("RPC")) });
  const signer = toClientEvmSigner(account, pub);
  const impl = scheme === "upto" ? new UptoEvmScheme(signer) : new ExactEvmScheme(signer);
  const pay = wrapFetchWithPaymentFromConfig(fetch, { schemes: [{ network: `eip155:${env("CHAIN_ID")}`, client: impl }],
    // The test token is not one of the default assets the client knows.
    spendControls: { allowedAssets: [{ asset: env("TOKEN"), network: `eip155:${env("CHAIN_ID")}` }] },
  });
  const resp = await pay(url);
  const header = resp.headers.get("PAYMENT-RESPONSE");
  const out = { status: resp.status, body: await resp.text(), settle: header ? decodePaymentResponseHeader(header) : null };
  console.log(JSON.stringify(out));
}

async function uptoVerify() {
  const { verifyTypedData } = require("viem");
  const { uptoPermit2WitnessTypes, PERMIT2_ADDRESS } = require("@x402/evm");
  const p = JSON.parse(env("PAYLOAD"));
  const a = p.permit2Authorization;
  const valid = await verifyTypedData({
    address: a.from,
    domain: { name: "Permit2", chainId: Number(env("CHAIN_ID")), verifyingContract: PERMIT2_ADDRESS },
    types: uptoPermit2WitnessTypes,
    primaryType: "PermitWitnessTransferFrom",
    message: {
      permitted: { token: a.permitted.token, amount: BigInt(a.permitted.amount) },
      spender: a.spender, nonce: BigInt(a.nonce), deadline: BigInt(a.deadline),
      witness: { to: a.witness.to, facilitator: a.witness.facilitator, validAfter: BigInt(a.witness.validAfter) },
    },
    signature: p.signature,
  });
  console.log(JSON.stringify({ valid }));
}

const [mode, arg] = process.argv.slice(2);
({ facilitator, server, client: () => client(arg, "exact"), "upto-client": () => client(arg, "upto"), "upto-verify": uptoVerify })[mode]().catch((e) => {
  console.error(e && e.stack || e);
  process.exit(1);
});
