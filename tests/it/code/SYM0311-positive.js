#!/usr/bin/env node
"use strict";
// Network access from JavaScript (CommonJS and ES modules).
const axios = require("axios");
const { get } = require("axios");
const { request: httpRequest } = require("node:http");
const https = require("https");
const net = require("net");
const got = require("got");
const superagent = require("superagent");
const tls = require("node:tls");
const dgram = require("dgram");
const undici = require("undici");

fetch("https://example.com"); // HIT
axios.get("https://example.com"); // HIT
axios({ url: "https://example.com" }); // HIT
get("https://example.com"); // HIT
httpRequest({ host: "example.com" }); // HIT
https.get("https://example.com", (res) => res.resume()); // HIT
const socket = net.connect(80, "example.com"); // HIT
got.post("https://example.com", { json: {} }); // HIT
superagent.get("https://example.com").end(); // HIT
tls.connect(443, "example.com"); // HIT
dgram.createSocket("udp4"); // HIT
undici.request("https://example.com"); // HIT
require("https").request("https://example.com"); // HIT
window.fetch("https://example.com"); // HIT
globalThis.fetch("https://example.com"); // HIT

async function load(url) {
  const res = await fetch(url); // HIT
  return res.json();
}

class Api {
  constructor() {
    this.client = axios.create({ baseURL: "https://example.com" }); // HIT
  }

  async list() {
    const { data } = await axios.get("/items"); // HIT
    return data;
  }
}

const handler = async (url) => (await fetch(url)).text(); // HIT
[1, 2].map((id) => fetch(`https://example.com/${id}`)); // HIT
fetch("https://a.example", { body: JSON.stringify(axios.get("https://b.example")) }); // HIT HIT
module.exports = { load, Api, handler };
