// Package staging is recoverd's side of a recovery's staging area. The
// engine hands out a directory (engine.Staging.Dir); recoverd writes the
// files of the commit it recovers into it itself, and this package is how:
// files written at any offset with a running CRC32C, the prefix of each
// checked chunk by chunk (MarkGood) recorded so that a transfer cut short,
// even by a restart of the node, resumes after it, whole files verified
// (length and CRC32C), and every staged file fsynced on a descriptor of
// its own, in parallel, before the engine is asked to publish. It knows
// nothing of any engine but the contract's file format: a file's CRC32C
// covers every byte but the last four, which hold it.
//
// # The directory
//
// Files are staged under their final names (engine.ValidateName). The
// package keeps its own records under progress.staged/ and its temp files
// under dot-names; anything else in the directory (the engine's own
// subdirectories, such as the reference engine's ops.staged/) is left
// alone.
//
// # Resuming
//
// A recovery interrupted by a restart of its node resumes from what it
// had staged; nothing staged is trusted on its word. Open lists the files
// an earlier process left and removes dot-named leftovers; none counts
// until Keep has checked it against the recovery's new plan: a complete
// file must read back with its length and CRC32C, and a partial one keeps
// the prefix its progress record names only if that prefix still reads
// with the checksum the record holds, cut to it (or to nothing). A
// progress record, progress.staged/<name>, is JSON {length, crc32c, good,
// prefix_crc32c}: the file it belongs to, the length of its checked
// prefix, and that prefix's CRC32C. It is written, without fsync, as the
// prefix grows (every 8 MiB newly checked) and for every partial file
// when the area is suspended, so a process crash loses at most 8 MiB per
// file in flight, and a power loss that took written bytes with it shows
// as a checksum that differs, and the file starts over. A prefix is only
// recorded for a file written in order, whose running checksum covers it.
//
// # Writes past the page cache
//
// A file of 4 MiB or more is written with O_DIRECT where a write allows it
// (a buffer, an offset and a length aligned to 4096 bytes, of 64 KiB or
// more: the data connection's chunks are read to such buffers), its tail
// and every other write through the page cache (direct.go). The bytes are
// copied once, from the receive buffer to the disk, and a recovery does
// not fill the node's page cache; the fsync makes both kinds durable.
//
// # Verify and fsync
//
// A file written whole in order is verified against the checksum computed
// as it was written, as Lucene checks a file while it is copied; any other
// (written out of order, resumed after a restart) is read back. Verify
// does not fsync. A verified file of 4 MiB or more is fsynced at once in
// the background (SyncBehind, two at a time), so its writeback overlaps
// the transfer of the files still coming; Sync, once all are written,
// waits for those, fails if one failed, and fsyncs every other staged
// file, each on a descriptor of its own with its error checked, at most
// 16 at once, or from 64 files on with one syncfs (one fsync after each
// small file, in the copy's path, cost a recovery of many small files
// more than the copy itself).
package staging
