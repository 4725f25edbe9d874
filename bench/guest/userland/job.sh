#!/bin/sh
# The userland benchmark's job (bench/userland.ts), run by Debian's dash in a
# chroot of the userland disk: python3 (job.py), the sqlite3 CLI, xz and gzip,
# sort and awk. Each part's output goes to a file; only markers and checksums
# reach the console, so console speed does not count. The host times the parts
# by the markers ("@@UL begin PART", "@@UL end PART SHA256"); the outputs must
# be the same under every emulator.
#
#   sh job.sh SCALE JOBDIR
set -eu
SCALE=${1:-1}
JOB=${2:-/job}
export LC_ALL=C PYTHONHASHSEED=0 PATH=/usr/bin:/usr/sbin
W=/tmp/userland-job
rm -rf "$W"
mkdir -p "$W"
cd "$W"

# Rows of the sqlite3 and shell parts: the same scale as job.py's records.
ROWS=$(awk -v s="$SCALE" 'BEGIN { n = int(8000 * s); if (n < 500) n = 500; print n }')

begin() { echo "@@UL begin $1"; }
end() { echo "@@UL end $1 $(sha256sum < "$W/$1.out" | cut -c1-64)"; }

begin job

begin python
python3 "$JOB/job.py" "$SCALE" "$W" > python.out
end python

begin sqlite3
{
  sqlite3 items-cli.db <<SQL
.mode csv
create table r (id integer primary key, name text, cat text, price integer, qty integer, day integer, note text);
.import records.csv r
create index r_cat on r(cat);
create index r_name on r(name);
.mode list
.separator " "
select count(*), sum(price), sum(qty) from r;
select cat, count(*), sum(price * qty), round(avg(price), 2) from r group by cat order by cat;
select name, count(*) as n from r group by name having n > 2 order by n desc, name limit 10;
select a.cat, b.cat, count(*) from r a join r b on a.name = b.name and a.id < b.id group by 1, 2 order by 3 desc, 1, 2 limit 8;
with recursive s(i) as (select 1 union all select i + 1 from s where i < $ROWS) select count(*), sum(i % 7) from s;
update r set price = price * 2 where day % 3 = 0;
select sum(price) from r;
select id, name from r where name like 'a%-z%' order by id limit 5;
pragma integrity_check;
SQL
  sqlite3 items-cli.db .dump | sha256sum
} > sqlite3.out
end sqlite3

begin compress
{
  cat records.csv python.out records.csv > blob
  wc -c < blob
  xz -6 -T1 -c blob > blob.xz
  wc -c < blob.xz
  xz -dc blob.xz | sha256sum
  xz -1 -T1 -c blob | xz -dc | cmp - blob && echo xz1 ok
  gzip -6 -n -c blob > blob.gz
  wc -c < blob.gz
  gzip -dc blob.gz | sha256sum
  gzip -9 -n -c blob | gzip -dc | cmp - blob && echo gzip9 ok
  sha256sum blob.xz blob.gz
} > compress.out
end compress

begin text
{
  sort -t, -k3,3 -k4,4n records.csv | sha256sum
  sort -t, -k2,2 -u records.csv | wc -l
  cut -d, -f7 records.csv | tr ' ' '\n' | sort | uniq -c | sort -k1,1nr -k2 | head -n 10
  awk -F, '{ n[$3]++; v[$3] += $4 * $5 } END { for (c in n) printf "%s %d %d\n", c, n[c], v[c] }' records.csv | sort
  awk -F, '{ split($7, w, " "); for (i in w) len[length(w[i])]++ } END { for (l in len) print l, len[l] }' records.csv | sort -n
  awk -F, '$6 % 5 == 0 { print toupper($2), $6 }' records.csv | sort -k2,2n -k1,1 | sha256sum
  sort -t, -k6,6n -k1,1n records.csv | awk -F, '{ d = $6; if (d != last) { if (NR > 1) print last, c; c = 0; last = d } c++ } END { print last, c }' | sha256sum
} > text.out
end text

cat python.out sqlite3.out compress.out text.out > job.out
end job
rm -rf "$W"
