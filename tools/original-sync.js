#!/usr/bin/env node
/*
 * tools/original-sync.js: the original system's change-stream handler, for
 * tools/bench-sync --original / --side-by-side (issue 23's comparison).
 *
 * A RE-CREATION FROM THE DESCRIPTION, not the original's code (its source is
 * not in this repository): shared/seed/original-index-writes.md (how it
 * writes a document) and the original's reconciliation notes (shared/seed/
 * 000_*.txt: a change stream for "new/updated docs", SYNC_BATCH_SIZE=100,
 * SYNC_BATCH_SIZE_BYTES=5 MB, full sync and live sync sharing one bulk
 * writer). What it does, as described:
 *   - opens a change stream on the collection at start (fullDocument:
 *     'updateLookup'), with no resume token kept across restarts;
 *   - writes each insert/update/replace as a bulk `update` of the document's
 *     fields (the described field list, mongo_id, the three reshaped fields),
 *     `doc_as_upsert: true`, `retry_on_conflict: 3`, routed by page_id, else
 *     countrySearchedfor, else the id text; no refresh on write; version
 *     conflicts left after the retries counted apart and otherwise ignored.
 * Where the description is silent, this assumes (the most plausible reading):
 *   - batching, not a request per event: events go into the one bulk writer's
 *     queue, which sends a `_bulk` when 100 actions (SYNC_BATCH_SIZE) or 5 MB
 *     (SYNC_BATCH_SIZE_BYTES) are queued, or FLUSH_MS (500, the reconciler's
 *     CHANGE_STREAM_BATCH_MS default, so that both sides wait as long for a
 *     batch to fill) after the first queued action;
 *   - one `_bulk` in flight at a time (one writer), no delay between batches
 *     (the 200 ms pause the notes name belongs to the reconciliation job);
 *   - events are taken from the stream as they come ('change' events): no
 *     back-pressure, the queue grows while OpenSearch is slower than the
 *     stream;
 *   - deletes are not written (the notes list the stream for "new/updated
 *     docs"; the benchmark has none); an update whose document is gone
 *     (fullDocument null) is skipped;
 *   - a failed `_bulk` (no response) is logged and its actions dropped.
 * Values are serialized as the Node driver's JSON does (Date -> ISO-8601 with
 * ms and Z, ObjectId -> hex via their toJSON).
 *
 * Environment: MONGODB_URI, MONGODB_DATABASE, MONGODB_COLLECTION,
 * OPENSEARCH_URL, OPENSEARCH_INDEX, SYNC_BATCH_SIZE (100),
 * SYNC_BATCH_SIZE_BYTES (5242880), FLUSH_MS (500). For the benchmark only:
 * BENCH_ACK_LOG, a file that gets "open <ms>" when the stream is open and
 * "ack <ms> <items> <errors> <conflicts>" after each `_bulk` (the bench
 * counts events applied from it). SIGTERM/SIGINT: flush, close, exit 0.
 *
 * Dependencies (tools/original-sync/package.json, pinned): `mongodb` and
 * `@opensearch-project/opensearch`, installed at bench time into a cache
 * directory and found through NODE_PATH, never vendored.
 */
'use strict';

const fs = require('fs');
const { MongoClient } = require('mongodb');
const { Client } = require('@opensearch-project/opensearch');

const env = (k, d) => (process.env[k] !== undefined && process.env[k] !== '' ? process.env[k] : d);
const MONGODB_URI = env('MONGODB_URI', 'mongodb://127.0.0.1:27017');
const DB = env('MONGODB_DATABASE', 'test');
const COLL = env('MONGODB_COLLECTION', 'ads');
const OS_URL = env('OPENSEARCH_URL', 'http://127.0.0.1:9200');
const INDEX = env('OPENSEARCH_INDEX', 'facebook-ads-hot');
const BATCH = parseInt(env('SYNC_BATCH_SIZE', '100'), 10);
const BATCH_BYTES = parseInt(env('SYNC_BATCH_SIZE_BYTES', '5242880'), 10);
const FLUSH_MS = parseInt(env('FLUSH_MS', '500'), 10);
const ACK_LOG = env('BENCH_ACK_LOG', null);

// the fields copied as they are (original-index-writes.md, in its order)
const FIELDS = [
  'ad_archive_id', 'library_id', 'page_id', 'page_name', 'advertiser_name', 'status',
  'is_active', 'started_running_on', 'start_date', 'scraped_at', 'permalink_url',
  'redirected_final_url', 'currency', 'keywords', 'countrySearchedfor', 'search_country',
  'country', 'region', 'platforms', 'publisher_platform', 'creative', 'snapshot',
  'search_query', 'search_media_type', 'search_type', 'categories', 'page_categories',
  'page_like_count', 'end_date', 'collation_id', 'collation_count',
  'contains_digital_created_media', 'contains_sensitive_content', 'is_profile_page',
  'page_is_deleted', 'page_entity_type', 'entity_type', 'gated_type', 'hide_data_status',
  'is_aaa_eligible', 'targeted_or_reached_countries', 'political_countries',
];

const idText = (id) => (id && typeof id.toHexString === 'function' ? id.toHexString() : String(id));

function transform(doc) {
  const id = idText(doc._id);
  const out = { mongo_id: id };
  for (const f of FIELDS) if (doc[f] !== undefined) out[f] = doc[f];
  const c = doc.countrySearchedfor_all;
  if (Array.isArray(c)) {
    out.countrySearchedfor_all = [];
    for (const it of c) {
      if (typeof it === 'string') out.countrySearchedfor_all.push({ country: it, is_active: null });
      else if (it && typeof it === 'object')
        out.countrySearchedfor_all.push({
          country: it.country ? it.country : null,
          is_active: it.is_active !== undefined ? it.is_active : null,
        });
    }
  } else if (c !== undefined) {
    out.countrySearchedfor_all = c;
  }
  const uf = doc['url-filter'];
  if (uf && typeof uf === 'object') {
    out['url-filter'] = { ...uf };
    if (uf['url-filter-id'] !== undefined) out['url-filter']['url-filter-id'] = idText(uf['url-filter-id']);
  } else {
    out['url-filter'] = uf === undefined ? null : uf;
  }
  out['url-filter-updated-at'] = doc['url-filter-updated-at'] === undefined ? null : doc['url-filter-updated-at'];
  const routing = doc.page_id ? String(doc.page_id) : doc.countrySearchedfor ? String(doc.countrySearchedfor) : id;
  return { id, routing, body: out };
}

const os = new Client({ node: OS_URL });
const stats = { events: 0, applied: 0, errors: 0, conflicts: 0, bulks: 0, skipped: 0 };
let ackFd = ACK_LOG ? fs.openSync(ACK_LOG, 'a') : null;
const ack = (line) => { if (ackFd !== null) fs.writeSync(ackFd, line + '\n'); };

// the one bulk writer: a queue, sent 100 actions (or 5 MB) at a time
const queue = [];
let queuedBytes = 0;
let timer = null;
let sending = null;

function enqueue(action, doc) {
  const a = JSON.stringify(action), d = JSON.stringify(doc);
  queue.push(a, d);
  queuedBytes += a.length + d.length + 2;
  if (full()) { if (!sending) start(); }
  else if (!timer) timer = setTimeout(kick, FLUSH_MS);
}

function full() {
  return queue.length / 2 >= BATCH || queuedBytes >= BATCH_BYTES;
}

// a full batch, or a partial one whose FLUSH_MS ran out (due)
let due = false;
function kick() {
  if (timer) { clearTimeout(timer); timer = null; }
  due = true;
  start();
}

let closing = false; // at exit: everything queued goes
function start() {
  if (!sending) sending = drain().finally(() => { sending = null; });
}

async function drain() {
  while (queue.length && (due || closing || full())) {
    due = false;
    // take up to BATCH actions (each is an action line plus a doc line)
    let n = 0, bytes = 0;
    while (n < queue.length && n / 2 < BATCH && bytes < BATCH_BYTES) {
      bytes += queue[n].length + queue[n + 1].length + 2;
      n += 2;
    }
    const body = queue.splice(0, n);
    queuedBytes -= bytes;
    try {
      const res = await os.bulk({ body: body.join('\n') + '\n' });
      const items = res.body.items || [];
      let errors = 0, conflicts = 0;
      for (const it of items) {
        const r = it.update || it.index || {};
        if (r.status === 409) conflicts++;
        else if (r.error) errors++;
      }
      stats.bulks++; stats.applied += items.length - errors - conflicts;
      stats.errors += errors; stats.conflicts += conflicts;
      ack(`ack ${Date.now()} ${items.length} ${errors} ${conflicts}`);
    } catch (e) {
      stats.errors += n / 2;
      console.error(`original-sync: _bulk failed, ${n / 2} actions dropped: ${e.message}`);
      ack(`ack ${Date.now()} ${n / 2} ${n / 2} 0`);
    }
  }
  // a batch still filling waits for its timer (set when its first action came)
  if (queue.length && !timer && !due) timer = setTimeout(kick, FLUSH_MS);
}

async function main() {
  const mongo = new MongoClient(MONGODB_URI);
  await mongo.connect();
  const stream = mongo.db(DB).collection(COLL).watch([], { fullDocument: 'updateLookup' });
  // the first resume token comes with the aggregate's answer: the stream is
  // open ('init' is not emitted in this event mode)
  stream.once('resumeTokenChanged', () => {
    ack(`open ${Date.now()}`);
    console.error(`original-sync: change stream open on ${DB}.${COLL}`);
  });
  stream.on('change', (ev) => {
    stats.events++;
    const t = ev.operationType;
    if ((t === 'insert' || t === 'update' || t === 'replace') && ev.fullDocument) {
      const { id, routing, body } = transform(ev.fullDocument);
      enqueue({ update: { _index: INDEX, _id: id, retry_on_conflict: 3, routing } },
        { doc: body, doc_as_upsert: true });
    } else {
      stats.skipped++;
    }
  });
  const done = new Promise((resolve) => {
    stream.on('error', (e) => { if (!closing) console.error(`original-sync: change stream: ${e.message}`); resolve(1); });
    const stop = () => { closing = true; resolve(0); };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  const rc = await done;
  closing = true;
  await stream.close().catch(() => {});
  kick();
  while (sending) await sending;
  await mongo.close().catch(() => {});
  await os.close().catch(() => {});
  console.error(`original-sync: ${JSON.stringify(stats)}`);
  if (ackFd !== null) fs.closeSync(ackFd);
  process.exit(rc);
}

main().catch((e) => { console.error(`original-sync: ${e.stack || e}`); process.exit(1); });
