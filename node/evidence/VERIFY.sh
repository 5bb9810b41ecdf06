#!/bin/sh
# Checks this Accord evidence bundle with nothing but a POSIX shell, openssl and the standard
# utilities (awk, cmp, dd, od). Run it in the unpacked bundle: sh VERIFY.sh
# One line per check; the first failure is named and ends the run with status 1.
# What each check proves: README.txt and, in the Accord sources, docs/evidence.md.
set -u
LC_ALL=C
export LC_ALL
cd "$(dirname "$0")" || exit 2
umask 077
T="${TMPDIR:-/tmp}/accord-verify.$$"
mkdir "$T" || { echo "FAIL: scratch: cannot create $T"; exit 2; }
trap 'rm -rf "$T"' EXIT
trap 'exit 2' HUP INT TERM

ok() { echo "ok: $1"; }
fail() { echo "FAIL: $1"; exit 1; }
need() { [ -f "$1" ] || fail "$2: $1 is missing"; }

# pb FILE PATH [text]: the values of protobuf field PATH ("4", or "5.1" inside field 5) in FILE,
# one per line: varints in decimal, bytes in hex (with "text": as characters, only if every
# byte is one of A-Z a-z 0-9 . _ -). Exit 1 on anything that is not well-formed protobuf.
pb() {
  od -An -v -tx1 "$1" | awk -v path="$2" -v mode="${3:-hex}" '
    BEGIN { for (i = 0; i < 256; i++) dec[sprintf("%02x", i)] = i; n = 0 }
    { for (i = 1; i <= NF; i++) b[n++] = dec[$i] }
    function bad(why) { print "malformed protobuf: " why > "/dev/stderr"; failed = 1; exit 1 }
    function varint(end,   v, m, c) {
      v = 0; m = 1
      do { if (p >= end || m > 2^56) bad("varint"); c = b[p++]; v += (c % 128) * m; m *= 128 } while (c >= 128)
      return v
    }
    function emit(s, e,   out, i, c) {
      out = ""
      for (i = s; i < e; i++) {
        c = b[i]
        if (mode == "text") {
          if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45 || c == 46 || c == 95)) bad("not plain text")
          out = out sprintf("%c", c)
        } else out = out sprintf("%02x", c)
      }
      print out
    }
    function walk(s, e, depth,   tag, f, wt, v, len, start, saved) {
      p = s
      while (p < e) {
        tag = varint(e); f = int(tag / 8); wt = tag % 8
        if (wt == 0) { v = varint(e); if (f == want[depth] && depth == nd) print v }
        else if (wt == 2) {
          len = varint(e); start = p; p += len
          if (p > e) bad("length")
          if (f == want[depth]) {
            if (depth == nd) emit(start, p)
            else { saved = p; walk(start, p, depth + 1); p = saved }
          }
        }
        else if (wt == 1) p += 8
        else if (wt == 5) p += 4
        else bad("wire type " wt)
        if (p > e) bad("truncated")
      }
    }
    END { if (failed) exit 1; nd = split(path, want, "."); walk(0, n, 1) }'
}

hex() { od -An -v -tx1 | tr -d ' \n'; }
sha256() { openssl dgst -sha256 -binary; }

# walk DATA STEPS: the batch root (docs/evidence.md) that the 33-byte steps lead to from DATA's
# leaf hash, into $T/root.bin; 1 if the steps are not well formed.
walk() {
  { printf '\000'; cat "$1"; } | sha256 > "$T/h.bin"
  len=$(wc -c < "$2")
  [ $((len % 33)) -eq 0 ] && [ "$len" -le $((32 * 33)) ] || return 1
  i=0
  while [ "$i" -lt $((len / 33)) ]; do
    dd if="$2" bs=33 skip="$i" count=1 2>/dev/null > "$T/step.bin"
    side=$(dd if="$T/step.bin" bs=1 count=1 2>/dev/null | hex)
    dd if="$T/step.bin" bs=1 skip=1 2>/dev/null > "$T/sib.bin"
    case $side in
      00) { printf '\001'; cat "$T/sib.bin" "$T/h.bin"; } | sha256 > "$T/n.bin" ;;
      01) { printf '\001'; cat "$T/h.bin" "$T/sib.bin"; } | sha256 > "$T/n.bin" ;;
      *) return 1 ;;
    esac
    mv "$T/n.bin" "$T/h.bin"
    i=$((i + 1))
  done
  mv "$T/h.bin" "$T/root.bin"
}

# signed DIR PREFIX: check DIR/signature.der over DIR/content.bin, alone (empty proof) or over
# PREFIX || the batch root its proof leads to, with the key in $T/pub.pem.
signed() {
  if [ -s "$1/proof.bin" ]; then
    walk "$1/content.bin" "$1/proof.bin" || return 2
    { printf '%s\000' "$2"; cat "$T/root.bin"; } > "$T/signed.bin"
  else
    # A content that starts with a root prefix is never an item signed alone.
    for p in accord-envelope-root/v1 accord-receipt-root/v1; do
      printf '%s\000' "$p" > "$T/prefix.bin"
      n=$(wc -c < "$T/prefix.bin")
      dd if="$1/content.bin" bs="$n" count=1 2>/dev/null | cmp -s - "$T/prefix.bin" && return 2
    done
    cp "$1/content.bin" "$T/signed.bin"
  fi
  openssl dgst -sha256 -verify "$T/pub.pem" -signature "$1/signature.der" "$T/signed.bin" \
    > /dev/null 2>&1 || return 1
}

# ---- the federation: CA, directory, certificates ---------------------------------------------

need ca.pem "federation CA"
openssl verify -check_ss_sig -CAfile ca.pem ca.pem > /dev/null 2>&1 \
  || fail "federation CA: ca.pem is not a self-signed certificate"
ok "federation CA: ca.pem is self-signed ($(openssl x509 -in ca.pem -noout -subject))"

need directory.json "directory"
need directory.json.sig "directory"
openssl x509 -in ca.pem -noout -pubkey > "$T/ca-pub.pem" || fail "federation CA: no public key"
openssl dgst -sha256 -verify "$T/ca-pub.pem" -signature directory.json.sig directory.json \
  > /dev/null 2>&1 || fail "directory: signature by the federation CA does not verify"
ok "directory: signed by the federation CA"
FED=$(awk -F'"' '/^  "federation": "/ { print $4; exit }' directory.json)
[ -n "$FED" ] || fail "directory: names no federation"

need envelope/content.bin "envelope"
ID=$(pb envelope/content.bin 1 text) || fail "envelope: content is not a message"
SENDER=$(pb envelope/content.bin 4 text) || fail "envelope: content is not a message"
CREATED=$(pb envelope/content.bin 6.1) || fail "envelope: content is not a message"
[ -n "$ID" ] && [ -n "$SENDER" ] && [ -n "$CREATED" ] \
  || fail "envelope: content names no message id, sender or creation time"
pb envelope/content.bin 5 text > "$T/recipients" || fail "envelope: content is not a message"
ok "envelope: message $ID from $SENDER to $(tr '\n' ' ' < "$T/recipients")"

# agency CODE: its certificate chains to the CA (at the message's creation time), names CODE in
# this federation, and is the one the signed directory lists for CODE.
agency() {
  c="certs/$1.pem"
  need "$c" "certificate of $1"
  openssl verify -CAfile ca.pem -attime "$CREATED" "$c" > /dev/null 2>&1 \
    || fail "certificate of $1: does not chain to the federation CA at $CREATED"
  openssl x509 -in "$c" -noout -ext subjectAltName 2>/dev/null | tr ',' '\n' \
    | sed 's/^ *//' | grep -qx "URI:spiffe://$FED/agency/$1" \
    || fail "certificate of $1: does not name spiffe://$FED/agency/$1"
  fp=$(openssl x509 -in "$c" -outform DER | sha256 | hex)
  listed=$(awk -F'"' -v code="$1" '
    /^      "agency": "/ { agency = $4 }
    /^      "certificate_sha256": "/ { if (agency == code) print $4 }' directory.json)
  [ -n "$fp" ] && [ "$fp" = "$listed" ] \
    || fail "certificate of $1: not the one the directory lists for $1"
  ok "certificate of $1: issued by the federation CA, listed for $1 in the directory"
}

agency "$SENDER"
openssl x509 -in "certs/$SENDER.pem" -noout -pubkey > "$T/pub.pem"
need envelope/signature.der "envelope"
need envelope/proof.bin "envelope"
signed envelope accord-envelope-root/v1
case $? in
  0) ok "envelope: signature by $SENDER verifies ($(($(wc -c < envelope/proof.bin) / 33)) batch step(s))" ;;
  2) fail "envelope: audit path to the signed batch root is malformed" ;;
  *) fail "envelope: signature by $SENDER does not verify" ;;
esac
DIGEST=$(sha256 < envelope/content.bin | hex)

# ---- receipts ----------------------------------------------------------------------------------

receipts=0
for r in receipts/*/; do
  [ -d "$r" ] || continue
  r=${r%/}
  code=${r#receipts/}
  need "$r/content.bin" "receipt of $code"
  need "$r/signature.der" "receipt of $code"
  need "$r/proof.bin" "receipt of $code"
  grep -qx -- "$code" "$T/recipients" || fail "receipt of $code: $code is not a recipient"
  agency "$code"
  openssl x509 -in "certs/$code.pem" -noout -pubkey > "$T/pub.pem"
  signed "$r" accord-receipt-root/v1
  case $? in
    0) ok "receipt of $code: signature by $code verifies ($(($(wc -c < "$r/proof.bin") / 33)) batch step(s))" ;;
    2) fail "receipt of $code: audit path to the signed batch root is malformed" ;;
    *) fail "receipt of $code: signature by $code does not verify" ;;
  esac
  [ "$(pb "$r/content.bin" 1 text)" = "$ID" ] || fail "receipt of $code: for another message"
  [ "$(pb "$r/content.bin" 3 text)" = "$SENDER" ] || fail "receipt of $code: for another sender"
  [ "$(pb "$r/content.bin" 4 text)" = "$code" ] || fail "receipt of $code: by another receiver"
  [ "$(pb "$r/content.bin" 2)" = "$DIGEST" ] \
    || fail "receipt of $code: receipted content digest differs from the envelope's"
  case $(pb "$r/content.bin" 6) in
    1) status=ACCEPTED ;; 2) status="REJECTED $(pb "$r/content.bin" 7 text)" ;; *) status=other ;;
  esac
  ok "receipt of $code: same message, sender and content digest ($DIGEST), $status"
  receipts=$((receipts + 1))
done
ok "receipts: $receipts checked"

# ---- audit entries ------------------------------------------------------------------------------

[ -f audit/checkpoint.txt ] || fail "audit: the bundle has no audit part (audit/checkpoint.txt is missing)"
awk '/^$/ { exit } { print }' audit/checkpoint.txt > "$T/note.txt"
ORIGIN=$(sed -n 1p "$T/note.txt")
SIZE=$(sed -n 2p "$T/note.txt")
ROOT=$(sed -n 3p "$T/note.txt")
LOG=${ORIGIN#"$FED/agency/"}
LOG=${LOG%/audit}
case $LOG in *[!A-Z0-9-]* | "") fail "audit checkpoint: origin $ORIGIN is no agency's log in $FED" ;; esac
[ "$ORIGIN" = "$FED/agency/$LOG/audit" ] || fail "audit checkpoint: origin $ORIGIN is not a log of $FED"
case $SIZE in "" | *[!0-9]*) fail "audit checkpoint: tree size is not a number" ;; esac
agency "$LOG"
openssl x509 -in "certs/$LOG.pem" -noout -pubkey > "$T/pub.pem"
grep "^— $ORIGIN " audit/checkpoint.txt | head -n 1 | cut -d ' ' -f 3 \
  | openssl base64 -d -A > "$T/sig.bin" 2>/dev/null
openssl pkey -pubin -in "$T/pub.pem" -outform DER | sha256 | dd bs=4 count=1 2>/dev/null > "$T/id.bin"
dd if="$T/sig.bin" bs=4 count=1 2>/dev/null | cmp -s - "$T/id.bin" \
  || fail "audit checkpoint: no signature by $LOG's key"
dd if="$T/sig.bin" bs=4 skip=1 2>/dev/null > "$T/sig.der"
openssl dgst -sha256 -verify "$T/pub.pem" -signature "$T/sig.der" "$T/note.txt" > /dev/null 2>&1 \
  || fail "audit checkpoint: signature by $LOG does not verify"
ok "audit checkpoint: $LOG's log at size $SIZE, signed by $LOG"

node() { { printf '\001'; cat "$1" "$2"; } | sha256 > "$T/t.bin"; mv "$T/t.bin" "$3"; }
entries=0
for e in audit/*.json; do
  [ -f "$e" ] || continue
  seq=${e#audit/}
  seq=${seq%.json}
  case $seq in "" | *[!0-9]*) fail "audit entry $e: not named by its number" ;; esac
  need "audit/$seq.proof" "audit entry $seq"
  tail -c "$((${#seq} + 7))" "$e" | grep -qx "\"seq\":$seq}" || fail "audit entry $seq: is not entry $seq"
  grep -qF "\"message_id\":\"$ID\"" "$e" || fail "audit entry $seq: is not about message $ID"
  # RFC 9162 2.1.3.2: the entry's inclusion proof leads to the checkpoint's root.
  { printf '\000'; cat "$e"; } | sha256 > "$T/r.bin"
  fn=$((seq - 1)) sn=$((SIZE - 1))
  [ "$fn" -le "$sn" ] || fail "audit entry $seq: beyond the checkpoint"
  plen=$(wc -c < "audit/$seq.proof")
  [ $((plen % 32)) -eq 0 ] || fail "audit entry $seq: inclusion proof is malformed"
  k=0
  while [ "$k" -lt $((plen / 32)) ]; do
    [ "$sn" -gt 0 ] || fail "audit entry $seq: inclusion proof too long"
    dd if="audit/$seq.proof" bs=32 skip="$k" count=1 2>/dev/null > "$T/p.bin"
    if [ $((fn % 2)) -eq 1 ] || [ "$fn" -eq "$sn" ]; then
      node "$T/p.bin" "$T/r.bin" "$T/r.bin"
      while [ $((fn % 2)) -eq 0 ] && [ "$fn" -ne 0 ]; do fn=$((fn / 2)) sn=$((sn / 2)); done
    else
      node "$T/r.bin" "$T/p.bin" "$T/r.bin"
    fi
    fn=$((fn / 2)) sn=$((sn / 2))
    k=$((k + 1))
  done
  [ "$sn" -eq 0 ] || fail "audit entry $seq: inclusion proof too short"
  [ "$(openssl base64 -A < "$T/r.bin")" = "$ROOT" ] \
    || fail "audit entry $seq: inclusion proof does not lead to the checkpoint's root"
  ok "audit entry $seq: $(tr -d '\n' < "$e" | cut -c 1-160 | sed 's/[^ -~]/?/g')... in the signed log"
  entries=$((entries + 1))
done
[ "$entries" -gt 0 ] || fail "audit: a checkpoint with no entries"
ok "audit: $entries entries about $ID checked"
echo "all checks passed"
