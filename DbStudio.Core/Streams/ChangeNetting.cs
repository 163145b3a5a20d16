// A transaction's changes of one row, netted to what committed: the stream shows a subscriber only row versions a GET
// could have returned (DESIGN §6), and the versions a row went through inside its writer's transaction were never
// visible to anybody. So, per transaction, the changes of one row — followed from image to image: an update or delete
// continues the change whose new image is its old one — become one: the row as it was before the transaction (the
// first change's old image) and as it committed (the last change's new image). A row inserted and deleted in one
// transaction leaves nothing; inserted then updated, an insert of its last version; updated then deleted, a delete of
// the version before the transaction. The netted change keeps the last change's id (its place in the log).
namespace DbStudio.Core.Streams;

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
            NetTransaction(changes, start, end, netted);
            start = end;
        }
        netted.Sort((a, b) => a.Id.CompareTo(b.Id));
        return netted;
    }

    /// <summary>Whether some transaction has more than one change and an update or delete among its later ones (only
    /// then can a change continue another): no image is compared or hashed otherwise.</summary>
    private static bool HasRepeats(IReadOnlyList<Change> changes)
    {
        for (var i = 1; i < changes.Count; i++)
            if (changes[i].Tx == changes[i - 1].Tx && changes[i].Op is 'u' or 'd') return true;
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
            Change? net = (first.Op, last.Op) switch
            {
                ('i', 'd') => null,                                                    // never committed
                ('i', _) => last with { Op = 'i', OldRecord = null, OldRecordDigest = null }, // inserted as it committed
                // (_, 'd'): a delete of the version before the transaction; otherwise an update from it to the one committed
                (_, 'd') => last with { Op = 'd', Record = null, OldRecord = first.OldRecord, OldRecordDigest = first.OldRecordDigest },
                _ => last with { Op = 'u', OldRecord = first.OldRecord, OldRecordDigest = first.OldRecordDigest },
            };
            // A version too large to stream at either end: nobody is shown the change (as for one such change alone).
            if (net is not null && (last.RecordDigest is not null || first.OldRecordDigest is not null))
                net = net with { Record = null, OldRecord = null };
            if (net is not null) netted.Add(net);
        }
    }
}
