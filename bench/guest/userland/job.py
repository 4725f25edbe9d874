"""The python part of the userland benchmark's job (bench/userland.ts).

Run in the guest's chroot and, for a cross-check, under qemu-riscv64 user
mode on the host: both must print exactly the same text. Everything is
derived from a fixed seed; nothing printed depends on time, paths or the
host. Run with PYTHONHASHSEED=0 (set iteration order is part of the output).

    python3 job.py SCALE OUTDIR

Writes OUTDIR/records.csv (the data the shell parts of the job work on) and
prints what it computed to stdout.
"""

import collections
import hashlib
import json
import lzma
import os
import random
import re
import sqlite3
import sys
import zlib

WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu "
    "amber basalt cobalt dune ember fjord glacier harbor island jasper kelp lagoon meadow "
    "nebula orchid prairie quartz river summit tundra upland valley willow yonder zephyr"
).split()
CATEGORIES = ["books", "garden", "tools", "music", "games", "sport", "food", "toys", "home", "office"]


def digest(b):
    return hashlib.sha256(b).hexdigest()[:16]


def generate(rng, n):
    """n records: id, name, category, price (cents), quantity, day, a sentence."""
    rows = []
    for i in range(n):
        name = "-".join(rng.choice(WORDS) for _ in range(2))
        cat = CATEGORIES[rng.randrange(len(CATEGORIES))]
        price = rng.randrange(99, 100000)
        qty = int(rng.expovariate(0.2)) + 1
        day = rng.randrange(0, 365)
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 14)))
        rows.append((i, name, cat, price, qty, day, text))
    return rows


def part_sqlite(rows, path, scale):
    print("== sqlite (in-process)")
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    c = db.cursor()
    c.execute("create table items (id integer primary key, name text, cat text, price integer, qty integer, day integer, note text)")
    # Inserts in batches of 1000, each batch its own transaction (a journal write each).
    for at in range(0, len(rows), 1000):
        with db:
            c.executemany("insert into items values (?,?,?,?,?,?,?)", rows[at:at + 1000])
    c.execute("create index items_name on items(name)")
    c.execute("create index items_cat_day on items(cat, day)")
    db.commit()
    rng = random.Random(7)
    found = 0
    total = 0
    for _ in range(int(1500 * scale)):
        name = "-".join(rng.choice(WORDS) for _ in range(2))
        for (price, qty) in c.execute("select price, qty from items where name = ?", (name,)):
            found += 1
            total += price * qty
    print("lookups", found, total)
    for cat, d0 in (("books", 10), ("tools", 100), ("food", 200), ("toys", 300)):
        r = c.execute("select count(*), sum(price), max(qty) from items where cat = ? and day between ? and ?", (cat, d0, d0 + 30)).fetchone()
        print("range", cat, d0, r)
    for row in c.execute("select cat, count(*), sum(price * qty), round(avg(price), 3), min(day), max(day) from items group by cat order by cat"):
        print("group", row)
    for row in c.execute(
        "select a.cat, count(*) from items a join items b on a.name = b.name and a.id < b.id "
        "where a.day % 7 = 0 group by a.cat order by 2 desc, 1 limit 5"
    ):
        print("join", row)
    with db:
        c.execute("update items set price = price + 1 where qty > 10")
        c.execute("delete from items where day > 360")
    print("after", c.execute("select count(*), sum(price) from items").fetchone())
    print("integrity", c.execute("pragma integrity_check").fetchone()[0])
    db.close()


def part_compress(blob):
    print("== lzma, zlib")
    for preset in (1, 6):
        x = lzma.compress(blob, preset=preset)
        assert lzma.decompress(x) == blob
        print("lzma", preset, len(blob), len(x), digest(x))
    x = lzma.compress(blob, format=lzma.FORMAT_ALONE)
    assert lzma.decompress(x) == blob
    print("lzma alone", len(x), digest(x))
    for level in (1, 6, 9):
        z = zlib.compress(blob, level)
        assert zlib.decompress(z) == blob
        print("zlib", level, len(z), digest(z), zlib.crc32(blob), zlib.adler32(blob))
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    parts = [co.compress(blob[i:i + 4096]) for i in range(0, len(blob), 4096)]
    raw = b"".join(parts) + co.flush()
    assert zlib.decompress(raw, -15) == blob
    print("deflate stream", len(raw), digest(raw))


def part_sort(rows):
    print("== sorting")
    by_price = sorted(rows, key=lambda r: (r[3], r[0]))
    print("cheapest", [r[0] for r in by_price[:5]], "dearest", [r[0] for r in by_price[-5:]])
    by_name = sorted(rows, key=lambda r: (r[1], -r[4], r[0]))
    print("names", digest("\n".join(f"{r[1]} {r[0]}" for r in by_name).encode()))
    words = [w for r in rows for w in r[6].split()]
    words.sort()
    print("words", len(words), digest(" ".join(words).encode()))
    nums = [((r[0] * 2654435761) ^ r[3]) & 0xFFFFFFFF for r in rows]
    nums.sort(reverse=True)
    print("numbers", nums[:3], nums[-3:], sum(nums[::97]))


def part_text(rows):
    print("== text")
    text = "\n".join(f"{r[0]}\t{r[1]}\t{r[2]}\t{r[6]}" for r in rows)
    counts = collections.Counter(re.findall(r"[a-z]+", text))
    print("top words", counts.most_common(8))
    pairs = collections.Counter(zip(*[iter(text.split())] * 2))
    print("pairs", len(pairs), sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    vowels = re.compile(r"\b([aeiou]\w+)\s+(\w+ing|\w+er)\b")
    print("matches", len(vowels.findall(text)))
    upper = text.title().replace("\t", " | ")
    print("title", digest(upper.encode()), len(upper.splitlines()))
    lines = [f"{r[2]:>8}|{r[1]:<20}|{r[3] / 100:10.2f}|{r[4]:4d}" for r in rows[:2000]]
    print("formatted", digest("\n".join(lines).encode()))
    # A set's iteration order follows the string hashes: the same only with the same PYTHONHASHSEED.
    print("set order", list({w for r in rows[:50] for w in r[6].split()})[:6])


def part_json(rows):
    print("== json")
    docs = [
        {"id": r[0], "name": r[1], "cat": r[2], "price": r[3] / 100, "qty": r[4], "tags": r[6].split()[:3], "meta": {"day": r[5], "odd": r[0] % 2 == 1}}
        for r in rows
    ]
    s = json.dumps(docs, sort_keys=True)
    back = json.loads(s)
    assert back == docs
    pretty = json.dumps(back[:500], indent=2)
    print("json", len(s), digest(s.encode()), len(pretty), digest(pretty.encode()))
    total = sum(d["price"] * d["qty"] for d in back)
    print("total", f"{total:.2f}")


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    out = sys.argv[2] if len(sys.argv) > 2 else "."
    n = max(500, int(8000 * scale))
    rng = random.Random(20261206)
    rows = generate(rng, n)
    print("records", n, digest(repr(rows[:100]).encode()))
    csv = "".join(f"{r[0]},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]},{r[6]}\n" for r in rows)
    with open(os.path.join(out, "records.csv"), "w") as f:
        f.write(csv)
    print("records.csv", len(csv), digest(csv.encode()))
    part_sqlite(rows, os.path.join(out, "items.db"), scale)
    part_compress(csv.encode()[: max(50_000, int(500_000 * scale))])
    part_sort(rows)
    part_text(rows)
    part_json(rows)
    print("done")


if __name__ == "__main__":
    main()
