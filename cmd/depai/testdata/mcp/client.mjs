// An independent MCP client (the TypeScript SDK) against `depai mcp`.
// argv: depai binary, data dir. Prints one JSON object with what it saw.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [depai, data] = process.argv.slice(2);
const transport = new StdioClientTransport({ command: depai, args: ["mcp", "--data", data], env: { PATH: process.env.PATH, HOME: process.env.HOME } });
const client = new Client({ name: "ts-sdk-test", version: "1.0.0" });
await client.connect(transport);
const { tools } = await client.listTools();
const call = async (name, args) => {
  const r = await client.callTool({ name, arguments: args });
  return { isError: !!r.isError, text: r.content.map((c) => c.text).join("") };
};
const out = {
  tools: tools.map((t) => t.name).sort(),
  clock: await call("rover.clock", {}),
  put: await call("rover.memory.put", { text: "seen from MCP" }),
  stop: await call("rover.command", { text: "/stop" }),
  badArgs: await call("rover.memory.put", { nope: 1 }),
};
console.log(JSON.stringify(out));
await client.close();
