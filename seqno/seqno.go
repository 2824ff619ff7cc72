package seqno

import (
	"errors"
	"fmt"
	"strconv"
)

// SeqNo is the sequence number of one operation on a shard.
type SeqNo int64

const (
	// NoOpsPerformed is the checkpoint or max seqno of a shard with no ops.
	NoOpsPerformed SeqNo = -1
	// Unassigned marks a seqno not known yet.
	Unassigned SeqNo = -2
)

func (s SeqNo) String() string {
	switch s {
	case NoOpsPerformed:
		return "none"
	case Unassigned:
		return "unassigned"
	}
	return strconv.FormatInt(int64(s), 10)
}

var (
	// ErrCompacted means the ops asked for are below what is retained: a file
	// copy is needed.
	ErrCompacted = errors.New("seqno: requested ops are no longer retained")
	// ErrLeaseLost means a retention lease expired or was removed, so the
	// history it protected may be gone.
	ErrLeaseLost = errors.New("seqno: retention lease lost")
)

// Stats are the seqno statistics of one shard copy.
type Stats struct {
	MaxSeqNo         SeqNo `json:"max_seqno"`
	LocalCheckpoint  SeqNo `json:"local_checkpoint"`
	GlobalCheckpoint SeqNo `json:"global_checkpoint"`
}

func (s Stats) String() string {
	return fmt.Sprintf("max_seqno=%v local_checkpoint=%v global_checkpoint=%v", s.MaxSeqNo, s.LocalCheckpoint, s.GlobalCheckpoint)
}
