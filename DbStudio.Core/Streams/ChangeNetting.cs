// A transaction's changes of one row, netted to what committed: the stream shows a subscriber only row versions a GET
// could have returned (DESIGN §6), and the versions a row went through inside its writer's transaction were never
// visible to anybody. So, per transaction, the changes of one row — followed from image to image: an update or delete
// continues the change whose new image is its old one — become one: the row as it was before the transaction (the
// first change's old image) and as it committed (the last change's new image). A row inserted and deleted in one
// transaction leaves nothing; inserted then updated, an insert of its last version; updated then deleted, a delete of
// the version before the transaction. The netted change keeps the last change's id (its place in the log). A
// transaction larger than one read is followed whole by the log itself, which tells each change its place (ChainPlace).
namespace DbStudio.Core.Streams;

/// <summary>
/// Where a change stands in its row's chain, for a transaction larger than one read of the log: the log follows such a
/// transaction's rows whole (ChangeLog, in PostgreSQL, by their images' hashes) and says so on each of its changes, since
/// one read holds only part of it.
/// </summary>
public abstract record ChainPlace
{
    /// <summary>The row's only change in the transaction: shown as it is.</summary>
    public static readonly ChainPlace Alone = new AloneChange();
    /// <summary>A version the row had inside the transaction (or a change of a transaction too large to follow): shown to nobody.</summary>
    public static readonly ChainPlace Within = new WithinChain();
    private sealed record AloneChange : ChainPlace;
    private sealed record WithinChain : ChainPlace;
}

/// <summary>The last change of a row's chain: netted with what the chain's first change says of the row before the transaction.</summary>
public sealed record LastOfChain(char FirstOp, string? FirstOldRecord, string? FirstOldRecordDigest) : ChainPlace;

public static class ChangeNetting
{
    public static IReadOnlyList<Change> Net(IReadOnlyList<Change> changes)
    {
        // The usual batch — each transaction changed each row once — is returned as it is.
        if (!HasRepeats(changes)) return changes;
        var netted = new List<Change>(changes.Count);
        for (var start = 0; start < changes.Count;)
        {
            var end = start + 1;
            while (end < changes.Count && changes[end].Tx == changes[start].Tx) end++;
            if (changes[start].Place is null) NetTransaction(changes, start, end, netted);
            else
                for (var i = start; i < end; i++)
                    switch (changes[i].Place)
                    {
                        case LastOfChain first when Chain(first.FirstOp, first.FirstOldRecord, first.FirstOldRecordDigest, changes[i]) is { } net:
                            netted.Add(net);
                            break;
                        case var place when ReferenceEquals(place, ChainPlace.Alone):
                            netted.Add(changes[i]);
                            break;
                    }
            start = end;
        }
        netted.Sort((a, b) => a.Id.CompareTo(b.Id));
        return netted;
    }

    /// <summary>Whether some transaction has more than one change and an update or delete among its later ones (only
    /// then can a change continue another), or the log followed a transaction's rows itself: no image is compared or
    /// hashed otherwise.</summary>
    private static bool HasRepeats(IReadOnlyList<Change> changes)
    {
        for (var i = 0; i < changes.Count; i++)
            if (changes[i].Place is not null || i > 0 && changes[i].Tx == changes[i - 1].Tx && changes[i].Op is 'u' or 'd') return true;
        return false;
    }

    private static void NetTransaction(IReadOnlyList<Change> changes, int start, int end, List<Change> netted)
    {
        // Chains of one row: (first change, last change); open ones are found by (table, current image).
        var chains = new List<(Change First, Change Last)>();
        var open = new Dictionary<(uint Table, string Image), int>();
        for (var i = start; i < end; i++)
        {
            var c = changes[i];
            if (c.Op is 'u' or 'd' && c.OldImage is { } old && open.Remove((c.TableOid, old), out var chain))
                chains[chain] = (chains[chain].First, c);
            else
            {
                chain = chains.Count;
                chains.Add((c, c));
            }
            // Followed by its image, or by the image's digest where it is too large to stream (its images are null).
            if (c.Op is not 'd' && c.NewImage is { } image) open[(c.TableOid, image)] = chain;
        }
        foreach (var (first, last) in chains)
        {
            if (ReferenceEquals(first, last)) { netted.Add(first); continue; }
            if (Chain(first.Op, first.OldRecord, first.OldRecordDigest, last) is { } net) netted.Add(net);
        }
    }

    /// <summary>A row's chain of changes in one transaction as one: from what its first change says of the row before the
    /// transaction to the last change's version. Null when the row never committed.</summary>
    private static Change? Chain(char firstOp, string? firstOldRecord, string? firstOldRecordDigest, Change last)
    {
        Change? net = (firstOp, last.Op) switch
        {
            ('i', 'd') => null,                                                    // never committed
            ('i', _) => last with { Op = 'i', OldRecord = null, OldRecordDigest = null }, // inserted as it committed
            // (_, 'd'): a delete of the version before the transaction; otherwise an update from it to the one committed
            (_, 'd') => last with { Op = 'd', Record = null, OldRecord = firstOldRecord, OldRecordDigest = firstOldRecordDigest },
            _ => last with { Op = 'u', OldRecord = firstOldRecord, OldRecordDigest = firstOldRecordDigest },
        };
        // A version too large to stream at either end: nobody is shown the change (as for one such change alone).
        if (net is not null && (last.RecordDigest is not null || firstOldRecordDigest is not null))
            net = net with { Record = null, OldRecord = null };
        return net;
    }
}
