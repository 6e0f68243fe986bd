// Look-alikes of network calls.
function fetch(url) {
  return cache[url];
}
const cache = {};
const res = fetch("https://example.com");

const axios = require("./local-axios");
axios.get("https://example.com");
const store = new Map();
store.get("https://example.com");
const { get } = require("./cache");
get("https://example.com");
// fetch("https://example.com") in a comment
/* axios.get("https://example.com") */
const doc = 'fetch("https://example.com")';
const tpl = `axios.get(${"x"})`;

class Repo {
  fetch(id) {
    return cache[id];
  }
  load(id) {
    return this.fetch(id);
  }
}
new Repo().fetch(1);
my.fetch("https://example.com");
