package planner

import "fmt"

// ahead says why recovering the target from this source would lose ops,
// or "" when it would not: the target's commit is of the source's history
// and holds ops past the source's max seqno, which every file-based plan
// overwrites and no op replay brings back. Ops of an older primary term
// above the target's global checkpoint, when that checkpoint is within
// the source's ops, are the exception: they were never acknowledged by
// every in-sync copy, and discarding them is the rollback Elasticsearch
// does after a failover (divergent).
func (v *view) ahead() string {
	if !v.tgtHasData {
		return ""
	}
	t := v.tgtData
	if t.HistoryUUID != v.srcCommit.HistoryUUID || t.MaxSeqNo <= v.srcMax {
		return ""
	}
	if v.divergent(t) != "" && t.GlobalCheckpoint <= v.srcMax {
		return ""
	}
	return fmt.Sprintf("the target holds ops up to seqno %v of history %s, past the source's max seqno %v: a recovery from this source would overwrite ops %v..%v that the source does not have",
		t.MaxSeqNo, t.HistoryUUID, v.srcMax, v.srcMax+1, t.MaxSeqNo)
}

// refuseAhead is the refusal for a target ahead of its source, or, when
// the settings allow data loss, the note that says what is lost.
func (v *view) refuseAhead() (refusal, note string) {
	why := v.ahead()
	switch {
	case why == "":
		return "", ""
	case v.settings.AllowDataLoss:
		return "", why + "; they are discarded, as the request allows (allow_data_loss)"
	}
	return "refused: " + why + "; recover from a copy that holds them, or allow data loss explicitly (allow_data_loss, recoverctl recover --allow-data-loss)", ""
}
