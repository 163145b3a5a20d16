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
        var open = new OpenChains<(uint Table, string Image)>();
        for (var i = start; i < end; i++)
        {
            var c = changes[i];
            if (c.Op is 'u' or 'd' && c.OldImage is { } old && open.TryTake((c.TableOid, old), out var chain))
                chains[chain] = (chains[chain].First, c);
            else
            {
                chain = chains.Count;
                chains.Add((c, c));
            }
            // Followed by its image, or by the image's digest where it is too large to stream (its images are null).
            if (c.Op is not 'd' && c.NewImage is { } image) open.Add((c.TableOid, image), chain);
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
        // Only the two ends count: the version before the transaction and the one committed. A change with an image too
        // large to stream carries each image as its small text or as a digest ("md5:…"), so an end that is small is
        // shown even where the version next to it, inside the transaction, was too large.
        var (record, recordTooLarge) = End(last.Record, last.RecordDigest);
        var (old, oldTooLarge) = End(firstOldRecord, firstOldRecordDigest);
        var net = (firstOp, last.Op) switch
        {
            ('i', 'd') => null,                                                                       // never committed
            ('i', _) => last with { Op = 'i', Record = record, OldRecord = null },                    // inserted as it committed
            // (_, 'd'): a delete of the version before the transaction; otherwise an update from it to the one committed
            (_, 'd') => last with { Op = 'd', Record = null, OldRecord = old },
            _ => last with { Op = 'u', Record = record, OldRecord = old },
        };
        if (net is null) return null;
        net = net with { RecordDigest = null, OldRecordDigest = null };
        // A version too large to stream at an end that is shown: nobody is shown the change (as for one such change alone).
        var tooLarge = net.Op switch { 'i' => recordTooLarge, 'd' => oldTooLarge, _ => recordTooLarge || oldTooLarge };
        return tooLarge ? net with { Record = null, OldRecord = null } : net;
    }

    /// <summary>An end's image and whether it was too large to stream.</summary>
    private static (string? Image, bool TooLarge) End(string? image, string? digest) =>
        image is not null ? (image, false)
        : digest is null ? (null, false)
        : digest.StartsWith("md5:", StringComparison.Ordinal) ? (null, true) : (digest, false);
}

/// <summary>
/// The chains whose row has an image now, by (table, image). Identical rows (of a table without a key) have the same
/// image, so an image holds every chain that has it, and an update or delete of that image continues one of them —
/// which one does not matter, since they cannot be told apart; none is dropped (each would otherwise be shown with the
/// version it had inside the transaction).
/// </summary>
internal sealed class OpenChains<TKey> where TKey : notnull
{
    private readonly Dictionary<TKey, int> _top = new();
    /// <summary>Per chain: the chain below it with the same image (-1: none). A chain is open under one image at a time.</summary>
    private readonly List<int> _below = [];

    public void Add(TKey key, int chain)
    {
        while (_below.Count <= chain) _below.Add(-1);
        _below[chain] = _top.TryGetValue(key, out var top) ? top : -1;
        _top[key] = chain;
    }

    public bool TryTake(TKey key, out int chain)
    {
        if (!_top.TryGetValue(key, out chain)) return false;
        var below = _below[chain];
        if (below >= 0) _top[key] = below;
        else _top.Remove(key);
        return true;
    }
}
