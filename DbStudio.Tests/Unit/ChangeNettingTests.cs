// A transaction's changes of one row are netted to what committed (Streams/ChangeNetting): no version a row had only
// inside its writer's transaction reaches anybody.
using DbStudio.Core.Streams;

namespace DbStudio.Tests.Unit;

public class ChangeNettingTests
{
    private static long _id;
    private static Change C(long tx, char op, string? record, string? old, uint table = 1) =>
        new(Interlocked.Increment(ref _id), table, [], op, record, old, DateTimeOffset.UnixEpoch, tx);

    private static string Show(IEnumerable<Change> changes) =>
        string.Join(" ", changes.Select(c => $"{c.Op}:{c.OldRecord ?? "-"}>{c.Record ?? "-"}"));

    [Fact]
    public void Changes_of_one_row_in_one_transaction_become_what_committed()
    {
        var inserted = C(1, 'i', "v1", null);
        var updated = C(1, 'u', "v2", "v1");
        var netted = ChangeNetting.Net([inserted, updated]);
        Assert.Equal("i:->v2", Show(netted));
        Assert.Equal(updated.Id, netted[0].Id); // the last change's place in the log

        Assert.Empty(ChangeNetting.Net([C(2, 'i', "v1", null), C(2, 'u', "v2", "v1"), C(2, 'd', null, "v2")]));
        Assert.Equal("u:v0>v2", Show(ChangeNetting.Net([C(3, 'u', "v1", "v0"), C(3, 'u', "v2", "v1")])));
        Assert.Equal("d:v0>-", Show(ChangeNetting.Net([C(4, 'u', "v1", "v0"), C(4, 'd', null, "v1")])));
        // Deleted, then inserted again: both happened to committed rows (the one before and the one after).
        Assert.Equal("d:v0>- i:->v0", Show(ChangeNetting.Net([C(5, 'd', null, "v0"), C(5, 'i', "v0", null)])));
    }

    /// <summary>A part of a transaction larger than one read, its places told by the log (which followed it whole): each
    /// change as its place says — not chained again with the others of the part.</summary>
    [Fact]
    public void A_part_of_a_transaction_followed_whole_by_the_log_is_netted_by_the_places_it_was_told()
    {
        Change P(char op, string? record, string? old, ChainPlace place) => C(20, op, record, old) with { Place = place };
        var netted = ChangeNetting.Net([
            P('i', "a1", null, ChainPlace.Within),                         // a version inside the transaction
            P('i', "b1", null, ChainPlace.Alone),                          // b's only change
            P('u', "a2", "a1", new LastOfChain('i', null, null)),          // a: inserted in an earlier read, updated here
            P('d', null, "c1", new LastOfChain('u', "c0", null)),          // c: updated from c0 earlier, deleted here
            P('u', "b1", "x", new LastOfChain('u', null, "md5:1")),        // a version too large to stream before: shown to nobody
            P('d', null, "d1", new LastOfChain('i', null, null)),          // inserted and deleted: nothing
            C(21, 'i', "e1", null),                                        // the next transaction: as before
            C(21, 'u', "e2", "e1"),
        ]);
        Assert.Equal("i:->b1 i:->a2 d:c0>- u:->- i:->e2", Show(netted));
    }

    [Fact]
    public void Changes_of_other_transactions_other_rows_and_other_tables_stay_apart()
    {
        // Two transactions: each committed, each seen by GET in turn.
        Assert.Equal("i:->v1 u:v1>v2", Show(ChangeNetting.Net([C(10, 'i', "v1", null), C(11, 'u', "v2", "v1")])));
        // Two rows of one transaction, interleaved: each netted on its own, in the order of their last change.
        Assert.Equal("i:->a2 i:->b2", Show(ChangeNetting.Net(
            [C(12, 'i', "a1", null), C(12, 'i', "b1", null), C(12, 'u', "a2", "a1"), C(12, 'u', "b2", "b1")])));
        // The same image in another table is another row.
        Assert.Equal("i:->v1 u:v1>v2", Show(ChangeNetting.Net([C(13, 'i', "v1", null, table: 1), C(13, 'u', "v2", "v1", table: 2)])));
    }

    [Fact]
    public void A_change_too_large_to_stream_is_followed_by_its_digests_and_shows_nothing_of_the_versions_around_it()
    {
        // Too large to stream: images null; kept to follow the row, the small image itself and the large one's digest (ChangeLog).
        Change Big(long tx, char op, string? digest, string? oldDigest) =>
            C(tx, op, null, null) with { RecordDigest = digest, OldRecordDigest = oldDigest };
        Assert.Empty(ChangeNetting.Net([C(30, 'i', "secret", null), Big(30, 'u', "md5:big", "secret"), Big(30, 'd', null, "md5:big")]));
        // Inserted small, committed large: an insert nobody is shown.
        var netted = ChangeNetting.Net([C(31, 'i', "secret", null), Big(31, 'u', "md5:big", "secret")]);
        Assert.Equal("i:->-", Show(netted));
        // Updated from a committed version to a large one: no old image either (nobody is shown it).
        Assert.Equal("u:->-", Show(ChangeNetting.Net([C(32, 'u', "v1", "v0"), Big(32, 'u', "md5:big", "v1")])));
    }

    [Fact]
    public void A_batch_without_repeats_is_handed_back_as_it_is()
    {
        IReadOnlyList<Change> batch = [C(20, 'i', "a", null), C(20, 'i', "b", null), C(21, 'u', "c", "a")];
        Assert.Same(batch, ChangeNetting.Net(batch));
    }
}
