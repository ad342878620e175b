// Builds, at test time, a valid EPUB 3 of at least 5 MB from the corpus: the chapters of Moby-Dick (real
// text, twice over as two parts) with the corpus's JPEG pictures placed in them, so that the reader's
// open time can be measured on a book of the size the issue names. Nothing binary is committed.
// Standalone: `node e2e/big-epub.mjs <corpus dir> <out.epub>`.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The entries of a zip file (name → bytes), read through its central directory. */
export function readZip(buf) {
  let eocd = buf.length - 22;
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error('not a zip file');
  const count = buf.readUInt16LE(eocd + 10);
  let off = buf.readUInt32LE(eocd + 16);
  const out = new Map();
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(off) !== 0x02014b50) throw new Error('bad central directory');
    const method = buf.readUInt16LE(off + 10);
    const csize = buf.readUInt32LE(off + 20);
    const nameLen = buf.readUInt16LE(off + 28);
    const extraLen = buf.readUInt16LE(off + 30);
    const commentLen = buf.readUInt16LE(off + 32);
    const local = buf.readUInt32LE(off + 42);
    const name = buf.toString('utf8', off + 46, off + 46 + nameLen);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + csize);
    out.set(name, method === 0 ? Buffer.from(raw) : inflateRawSync(raw));
    off += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** A zip file of `entries` ({name, data, store}); `store` entries are not compressed (mimetype, JPEGs). */
export function writeZip(entries) {
  const locals = [];
  const central = [];
  let offset = 0;
  for (const { name, data, store } of entries) {
    const nameBuf = Buffer.from(name, 'utf8');
    const body = store ? data : deflateRawSync(data, { level: 6 });
    const crc = crc32(data);
    const head = Buffer.alloc(30);
    head.writeUInt32LE(0x04034b50, 0);
    head.writeUInt16LE(20, 4);
    head.writeUInt16LE(0x0800, 6); // UTF-8 names
    head.writeUInt16LE(store ? 0 : 8, 8);
    head.writeUInt32LE(0, 10); // time/date
    head.writeUInt32LE(crc, 14);
    head.writeUInt32LE(body.length, 18);
    head.writeUInt32LE(data.length, 22);
    head.writeUInt16LE(nameBuf.length, 26);
    head.writeUInt16LE(0, 28);
    locals.push(head, nameBuf, body);
    const dir = Buffer.alloc(46);
    dir.writeUInt32LE(0x02014b50, 0);
    dir.writeUInt16LE(20, 4);
    dir.writeUInt16LE(20, 6);
    dir.writeUInt16LE(0x0800, 8);
    dir.writeUInt16LE(store ? 0 : 8, 10);
    dir.writeUInt32LE(0, 12);
    dir.writeUInt32LE(crc, 16);
    dir.writeUInt32LE(body.length, 20);
    dir.writeUInt32LE(data.length, 24);
    dir.writeUInt16LE(nameBuf.length, 28);
    dir.writeUInt32LE(offset, 42);
    central.push(dir, nameBuf);
    offset += 30 + nameBuf.length + body.length;
  }
  const dirSize = central.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(dirSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...central, end]);
}

const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The body markup of a Moby-Dick chapter with links and pictures taken out (they point into that book). */
function chapterBody(xhtml) {
  const m = /<body[^>]*>([\s\S]*)<\/body>/i.exec(xhtml);
  if (!m) return null;
  const body = m[1]
    .replace(/<img\b[^>]*>/gi, '')
    .replace(/<a\b[^>]*>/gi, '')
    .replace(/<\/a>/gi, '')
    .replace(/\s(?:epub:type|class|id)="[^"]*"/gi, '');
  const text = body.replace(/<[^>]+>/g, '').trim();
  return text.length > 2_000 ? body : null;
}

/** Builds the book; returns its bytes and facts (chapter count, size). */
export async function makeBigEpub(corpus, { minBytes = 5 * 1024 * 1024 } = {}) {
  const moby = readZip(await readFile(path.join(corpus, 'epub/moby-dick.epub')));
  const bodies = [...moby.entries()]
    .filter(([name]) => /\.x?html$/.test(name))
    .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
    .map(([, data]) => chapterBody(data.toString('utf8')))
    .filter(Boolean);
  const pictures = [];
  for (const f of ['epub/haruko-html-jpeg.epub', 'epub/page-blanche.epub']) {
    for (const [name, data] of readZip(await readFile(path.join(corpus, f)))) if (/\.jpe?g$/i.test(name)) pictures.push(data);
  }
  if (bodies.length < 50 || pictures.length < 5) throw new Error(`corpus too small for the big EPUB (${bodies.length} chapters, ${pictures.length} pictures)`);
  const chapters = [];
  for (const part of [1, 2]) bodies.forEach((body, i) => chapters.push({ title: `Part ${part}, chapter ${i + 1}`, body }));
  const every = Math.max(1, Math.floor(chapters.length / pictures.length));
  const files = [];
  const manifest = [];
  chapters.forEach((c, i) => {
    const id = `c${String(i + 1).padStart(3, '0')}`;
    const picture = i % every === 0 && i / every < pictures.length ? i / every : null;
    const img = picture === null ? '' : `<p><img src="images/p${picture}.jpg" alt="Picture ${picture + 1}"/></p>`;
    const html = `<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" lang="en" xml:lang="en">
<head><title>${esc(c.title)}</title></head>
<body><section><h1>${esc(c.title)}</h1>${img}${c.body}</section></body>
</html>`;
    files.push({ name: `OEBPS/${id}.xhtml`, data: Buffer.from(html, 'utf8') });
    manifest.push({ id, href: `${id}.xhtml`, title: c.title });
  });
  const nav = `<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" lang="en" xml:lang="en">
<head><title>Contents</title></head>
<body><nav epub:type="toc" id="toc"><h1>Contents</h1><ol>
${manifest.map((m) => `<li><a href="${m.href}">${esc(m.title)}</a></li>`).join('\n')}
</ol></nav></body>
</html>`;
  const opf = `<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" xml:lang="en">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:identifier id="uid">urn:uuid:6f1c1e1a-5b0e-4c1e-9d61-athena-e2e-big</dc:identifier>
<dc:title>A Five-Megabyte Moby-Dick</dc:title>
<dc:creator>Herman Melville</dc:creator>
<dc:language>en</dc:language>
<meta property="dcterms:modified">2026-01-01T00:00:00Z</meta>
</metadata>
<manifest>
<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
${pictures.map((_, i) => `<item id="p${i}" href="images/p${i}.jpg" media-type="image/jpeg"${i === 0 ? ' properties="cover-image"' : ''}/>`).join('\n')}
${manifest.map((m) => `<item id="${m.id}" href="${m.href}" media-type="application/xhtml+xml"/>`).join('\n')}
</manifest>
<spine>
${manifest.map((m) => `<itemref idref="${m.id}"/>`).join('\n')}
</spine>
</package>`;
  const container = `<?xml version="1.0" encoding="utf-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>`;
  const bytes = writeZip([
    { name: 'mimetype', data: Buffer.from('application/epub+zip'), store: true },
    { name: 'META-INF/container.xml', data: Buffer.from(container) },
    { name: 'OEBPS/content.opf', data: Buffer.from(opf) },
    { name: 'OEBPS/nav.xhtml', data: Buffer.from(nav) },
    ...pictures.map((data, i) => ({ name: `OEBPS/images/p${i}.jpg`, data, store: true })),
    ...files,
  ]);
  if (bytes.length < minBytes) throw new Error(`the big EPUB is only ${bytes.length} bytes`);
  return { bytes, chapters: chapters.length, pictures: pictures.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [corpus, out] = process.argv.slice(2);
  const { bytes, chapters, pictures } = await makeBigEpub(corpus);
  await writeFile(out, bytes);
  console.log(JSON.stringify({ out, bytes: bytes.length, chapters, pictures }));
}
