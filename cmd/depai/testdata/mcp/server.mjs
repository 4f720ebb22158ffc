// An independent MCP server (the TypeScript SDK) that a depai agent uses.
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const server = new McpServer({ name: "ts-sdk-tools", version: "1.0.0" });
server.registerTool("geo.distance", { description: "Distance in metres between two points.", inputSchema: { lat1: z.number(), lon1: z.number(), lat2: z.number(), lon2: z.number() }, annotations: { readOnlyHint: true } },
  async ({ lat1, lon1, lat2, lon2 }) => {
    const r = Math.PI / 180, R = 6371008.8;
    const h = Math.sin((lat2 - lat1) * r / 2) ** 2 + Math.cos(lat1 * r) * Math.cos(lat2 * r) * Math.sin((lon2 - lon1) * r / 2) ** 2;
    return { content: [{ type: "text", text: String(Math.round(2 * R * Math.asin(Math.sqrt(h)))) }] };
  });
server.registerTool("arm.move", { description: "Move the arm to a target.", inputSchema: { lat: z.number(), lon: z.number(), speed: z.number() } },
  async ({ speed }) => ({ content: [{ type: "text", text: "moved at " + speed + " (env " + (process.env.SECRET_TOKEN || "unset") + ", HOME " + (process.env.HOME || "unset") + ")" }] }));
server.registerTool("fails", { description: "Always fails.", inputSchema: {} }, async () => ({ isError: true, content: [{ type: "text", text: "no such luck" }] }));
server.registerTool("hangs", { description: "Never answers.", inputSchema: {} }, () => new Promise(() => {}));
await server.connect(new StdioServerTransport());
