// What each subscriber may see of a batch of changes — decided by PostgreSQL, on the project's REST logins with the
// subscriber's claims, never by a copy of the rules in C#. For every distinct identity (anon; each end user; end-user
// admins; admin) one statement, batched per login in one round trip, asks PostgreSQL for each change:
//  - the columns this role may SELECT (has_column_privilege: column grants), the rest cut from the row images;
//  - whether row security applies to this role on this table (row_security_active: RLS on/forced, table owner), and if
//    it does, the table's own SELECT policies for this role (pg_policy, permissive OR'ed, restrictive AND'ed, as
//    PostgreSQL combines them), evaluated on the old and the new row image — which is how a delete is checked against
//    the row it removed. The policies' text is PostgreSQL's own deparse (pg_get_expr) and runs as the caller;
//  - each audience's stream filters, written by the same planner as GET's WHERE, on columns the role may still read.
// So the six Access switches, hand-written permissive and restrictive policies of any expression, column grants, and a
// parent's policies for its partitions' rows all apply, and a change of rights applies from the next change on.
// Inserted and updated rows are read back from the table itself (real RLS, current values) where the table has a primary key
// the role may read. A statement that fails shows the batch to nobody of that audience.
using System.Collections.Concurrent;
using System.Text;
using DbStudio.Core.Rest;
using DbStudio.Core.Sql;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using DbStudio.Core.Catalog;
using DbStudio.Core.Projects;

namespace DbStudio.Core.Streams;

/// <summary>An identity and the stream filters of one or more subscribers: they all get the same frames.</summary>
public sealed class Audience(StreamIdentity identity, IReadOnlyList<Filter> filters, string filterKey) : IEquatable<Audience>
{
    public StreamIdentity Identity { get; } = identity;
    public IReadOnlyList<Filter> Filters { get; } = filters;
    /// <summary>The filters as the client wrote them, in a canonical order: equal keys, equal filters.</summary>
    public string FilterKey { get; } = filterKey;

    public bool Equals(Audience? other) => other is not null && Identity == other.Identity && FilterKey == other.FilterKey;
    public override bool Equals(object? obj) => Equals(obj as Audience);
    public override int GetHashCode() => HashCode.Combine(Identity, FilterKey);
}

/// <summary>What one audience sees of one change: null when nothing.</summary>
public sealed record VisibleChange(Change Change, ChangeKind Kind, string? Record, string? OldRecord);

public sealed class StreamVisibility(RestConnections connections, Microsoft.Extensions.Options.IOptions<DbStudioOptions> options,
    ILogger<StreamVisibility> log)
{
    private TimeSpan StatementTimeout => options.Value.Rest.StatementTimeout;

    /// <summary>The SELECT policies' combined expression for a role, their fingerprint, and the table's current name
    /// (a table renamed since its subscribers came keeps being followed: it is the OID that counts).</summary>
    private sealed record Policies(string Fingerprint, string Expression, string TableName, string[] Readable);

    /// <summary>The SELECT policies that apply to a role on a table, as last read (checked against a fingerprint every time).
    /// Keyed by project too: an OID is one server's, and another server (or the server a project moved to) gives the same
    /// number to another project's table.</summary>
    private readonly ConcurrentDictionary<(string Project, uint Table, RestRole Role), Policies> _policies = new();

    /// <summary>
    /// For each audience, what it sees of <paramref name="changes"/> (changes of <paramref name="table"/> or of its
    /// partitions), in the changes' order.
    /// </summary>
    public async Task<Dictionary<Audience, List<VisibleChange>>> EvaluateAsync(string projectId, TableInfo table,
        IReadOnlyList<Change> changes, IReadOnlyCollection<Audience> audiences, CancellationToken ct)
    {
        var result = new Dictionary<Audience, List<VisibleChange>>();
        // Only what committed: a row's versions inside its writer's transaction are never shown (ChangeNetting).
        changes = ChangeNetting.Net(changes);
        // One connection per role; many identities of one role (signed-in users) are shared out over a few connections,
        // whose statements PostgreSQL runs side by side.
        var runs = new List<Task<List<(Audience, List<VisibleChange>)>>>();
        foreach (var byRole in audiences.GroupBy(a => a.Identity.Role))
        {
            var identities = byRole.GroupBy(a => a.Identity).ToList();
            var slices = Math.Clamp(identities.Count / IdentitiesPerConnection, 1, MaxConnectionsPerRole);
            for (var i = 0; i < slices; i++)
            {
                var slice = i;
                var part = identities.Where((_, j) => j % slices == slice).SelectMany(g => g).ToList();
                runs.Add(EvaluateRoleAsync(projectId, table, changes, byRole.Key, part, ct));
            }
        }
        foreach (var run in runs)
            foreach (var (audience, seen) in await run) result[audience] = seen;
        return result;
    }

    private async Task<List<(Audience, List<VisibleChange>)>> EvaluateRoleAsync(string projectId, TableInfo table,
        IReadOnlyList<Change> changes, RestRole role, List<Audience> audiences, CancellationToken ct)
    {
        try
        {
            // The role is taken inside each statement's own transaction (the shared login serves every kind of caller).
            var conn = await connections.RentForRequestAsync(projectId, role, ct);
            var acting = RestConnections.ActingRole(projectId, role);
            try
            {
                try { return await DecideAsync(conn, projectId, table, changes, role, acting, audiences, ct); }
                catch (PostgresException e) when (!Transient(e))
                {
                    await RecoverAsync(conn, projectId, role);
                    if (audiences.Count == 1) throw;
                    // One audience's filters failed the shared statement (a pattern PostgreSQL refuses on some row it may
                    // see, say): each on its own, so the others still get theirs.
                    var each = new List<(Audience, List<VisibleChange>)>();
                    foreach (var a in audiences)
                    {
                        try { each.AddRange(await DecideAsync(conn, projectId, table, changes, role, acting, [a], ct)); }
                        catch (PostgresException one) when (!Transient(one))
                        {
                            await RecoverAsync(conn, projectId, role);
                            each.Add((a, []));
                        }
                    }
                    return each;
                }
            }
            finally { connections.Return(conn); }
        }
        catch (Exception e) when (Transient(e))
        {
            // The database is away or restarting, or every connection is busy: nothing is decided, and the caller reads
            // these changes again shortly. Broken connections are dropped, not those of other projects that are busy.
            if (e is not RestConnections.BusyException) connections.ClearAll();
            throw;
        }
        catch (Exception e) when (e is PostgresException or NpgsqlException or InvalidCastException && !ct.IsCancellationRequested)
        {
            // Fail closed: nobody of this audience sees this batch.
            log.LogWarning("Stream visibility for a table of project {Project} could not be decided ({Message}); the changes were not sent",
                projectId, (e as PostgresException)?.MessageText ?? e.Message);
            return audiences.Select(a => (a, new List<VisibleChange>())).ToList();
        }
    }

    /// <summary>Runs the statements, reading the policies again when the table was renamed or they changed since.</summary>
    private async Task<List<(Audience, List<VisibleChange>)>> DecideAsync(NpgsqlConnection conn, string projectId, TableInfo table,
        IReadOnlyList<Change> changes, RestRole role, string acting, List<Audience> audiences, CancellationToken ct)
    {
        var key = (projectId, table.Oid, role);
        if (!_policies.TryGetValue(key, out var policies)) policies = _policies[key] = await ReadPoliciesAsync(conn, acting, table.Oid, ct);
        List<(Audience, List<VisibleChange>)> rows;
        string fingerprint;
        try { (rows, fingerprint) = await RunAsync(conn, acting, table, changes, audiences, policies, ct); }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.UndefinedObject)
        {
            // Renamed since the policies were read: read them (and the name) again.
            conn.UnprepareAll();
            policies = _policies[key] = await ReadPoliciesAsync(conn, acting, table.Oid, ct);
            (rows, fingerprint) = await RunAsync(conn, acting, table, changes, audiences, policies, ct);
        }
        if (fingerprint == policies.Fingerprint) return rows;
        // The policies changed since they were read: read them again and look again.
        policies = _policies[key] = await ReadPoliciesAsync(conn, acting, table.Oid, ct);
        return (await RunAsync(conn, acting, table, changes, audiences, policies, ct)).Rows;
    }

    /// <summary>After a failed statement: code of the project's that failed half-way may have left the session in another role.</summary>
    private static async Task RecoverAsync(NpgsqlConnection conn, string projectId, RestRole role)
    {
        try
        {
            conn.UnprepareAll();
            await RestConnections.RestoreRoleAsync(conn, projectId, role, CancellationToken.None);
        }
        catch (Exception e) when (e is InvalidOperationException or NpgsqlException) { /* broken: dropped on return */ }
    }

    /// <summary>A connection failure or a server shutting down — not an answer about the rows.</summary>
    internal static bool Transient(Exception e) =>
        e is NpgsqlException and not PostgresException
        || e is PostgresException pg && (pg.SqlState.StartsWith("08", StringComparison.Ordinal) || pg.SqlState.StartsWith("57P", StringComparison.Ordinal));

    /// <summary>
    /// Whether a subscriber with this identity and these filters may follow the table at all: it needs SELECT on some
    /// column, on every column its filters name, and — where row security applies to it — some permissive policy.
    /// Null when it may; else PostgreSQL's error as GET would give it.
    /// </summary>
    public async Task<PostgresException?> CheckAsync(string projectId, TableInfo table, Audience audience, CancellationToken ct)
    {
        var conn = await connections.RentAsync(projectId, audience.Identity.Role, ct);
        try
        {
            var policies = _policies[(projectId, table.Oid, audience.Identity.Role)] =
                await ReadPoliciesAsync(conn, RestConnections.ActingRole(projectId, audience.Identity.Role), table.Oid, ct);
            await using var cmd = new NpgsqlCommand("""
                SELECT coalesce(array_agg(a.attname::text) FILTER (WHERE pg_catalog.has_column_privilege($1, a.attnum, 'SELECT')), '{}'),
                       pg_catalog.row_security_active($1)
                FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                """, conn);
            cmd.Parameters.Add(new() { Value = table.Oid, NpgsqlDbType = NpgsqlDbType.Oid });
            string[] readable;
            bool rls;
            await using (var r = await cmd.ExecuteReaderAsync(ct))
            {
                await r.ReadAsync(ct);
                readable = r.GetFieldValue<string[]>(0);
                rls = r.GetBoolean(1);
            }
            var denied = RestSql.FilterColumns(audience.Filters).FirstOrDefault(c => !readable.Contains(c));
            if (readable.Length == 0 || denied is not null || rls && policies.Expression == "false")
                return new PostgresException(
                    denied is not null ? $"permission denied for column {denied} of table {table.Name}" : $"permission denied for table {table.Name}",
                    "ERROR", "ERROR", PostgresErrorCodes.InsufficientPrivilege,
                    detail: denied is not null ? null : "This credential may read no rows of the table, so it cannot follow its changes");
            // Patterns are checked whole here (on an empty row they would never run): one PostgreSQL would refuse on
            // some row later fails for this subscriber now, and never in the statement its identity shares.
            foreach (var f in Leaves(audience.Filters))
            {
                if (f.Op is FilterOp.Like or FilterOp.Ilike && TrailingEscape(f.Value))
                    return new PostgresException("LIKE pattern must not end with escape character", "ERROR", "ERROR",
                        PostgresErrorCodes.InvalidEscapeSequence);
                if (f.Op is FilterOp.Match or FilterOp.Imatch)
                {
                    await using var regex = new NpgsqlCommand("SELECT '' ~ $1", conn);
                    regex.Parameters.Add(new NpgsqlParameter { Value = f.Value ?? "", NpgsqlDbType = NpgsqlDbType.Text });
                    try { await regex.ExecuteScalarAsync(ct); }
                    catch (PostgresException e) { return e; }
                }
            }
            if (audience.Filters.Count > 0)
            {
                // The filters once on an empty row: a value that is not of its column's type fails here, for this
                // subscriber, and never later in the statement every subscriber of this identity shares.
                var parameters = new List<NpgsqlParameter>();
                var alias = SqlText.Ident(table.Name);
                var condition = RestSql.FilterCondition(audience.Filters, table, alias, parameters);
                await using var probe = new NpgsqlCommand(
                    $"SELECT {condition} FROM jsonb_populate_record(NULL::{SqlText.Qualified(table.Schema, table.Name)}, NULL) AS {alias}", conn);
                foreach (var p in parameters) probe.Parameters.Add(p);
                try { await probe.ExecuteScalarAsync(ct); }
                catch (PostgresException e) { return e; }
            }
            return null;
        }
        finally { connections.Return(conn); }
    }

    private static IEnumerable<ColumnFilter> Leaves(IEnumerable<Filter> filters) => filters.SelectMany(f => f switch
    {
        LogicFilter g => Leaves(g.Children),
        ColumnFilter c => [c],
        _ => [],
    });

    /// <summary>Whether a LIKE pattern ends with an escape character that escapes nothing (PostgreSQL refuses it, but only
    /// once matching reaches it).</summary>
    private static bool TrailingEscape(string? pattern)
    {
        var n = 0;
        for (var i = (pattern ?? "").Length - 1; i >= 0 && pattern![i] == '\\'; i--) n++;
        return n % 2 == 1;
    }

    /// <summary>The row a new image stands for, as the connection's role reads it from the table now (null: it may not).</summary>
    private static string LiveRow(TableInfo table, Policies policies)
    {
        var target = SqlText.Qualified(table.Schema, policies.TableName);
        var key = table.PrimaryKey.Select(k => SqlText.Ident(k.Name)).ToList();
        // One lookup by key per change, as a subquery of its own (OFFSET 0 keeps PostgreSQL from turning it into a join
        // of the changes with every row the role may see, which it did for signed-in users — their whole own rows read
        // and hashed for each batch).
        return $"""
            LEFT JOIN LATERAL (
              SELECT (SELECT to_jsonb(x) FROM (
                SELECT {string.Join(", ", policies.Readable.Select(c => "pgrst_live." + SqlText.Ident(c)))} FROM {target} AS pgrst_live
                WHERE ({string.Join(", ", key.Select(k => "pgrst_live." + k))}) =
                      (SELECT {string.Join(", ", key.Select(k => "pgrst_key." + k))} FROM jsonb_populate_record(NULL::{target}, c.n) AS pgrst_key)
              ) x) AS j WHERE c.n IS NOT NULL OFFSET 0) cur ON true
            """;
    }

    /// <summary>Forgets what was read of a project's policies (deleted or moved). Stale entries are harmless otherwise:
    /// fingerprints catch them.</summary>
    public void Forget(string projectId)
    {
        foreach (var key in _policies.Keys)
            if (key.Project == projectId) _policies.TryRemove(key, out _);
    }

    /// <summary>The SELECT policies that apply to the connection's role, and their fingerprint.</summary>
    private const string ApplicablePolicies = """
        FROM pg_catalog.pg_policy p
        WHERE p.polrelid = $1 AND p.polcmd IN ('r', '*')
          AND (0::oid = ANY (p.polroles) OR EXISTS (SELECT 1 FROM unnest(p.polroles) x WHERE pg_catalog.pg_has_role(current_user, x, 'USAGE')))
        """;

    /// <summary>The columns the connection's role may SELECT, in the table's order.</summary>
    private const string ReadableSql =
        "ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a " +
        "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND pg_catalog.has_column_privilege($1, a.attnum, 'SELECT') ORDER BY a.attnum)::text";

    private const string FingerprintSql =
        "(SELECT md5((SELECT relname FROM pg_catalog.pg_class WHERE oid = $1) || E'\\n' || " + ReadableSql + " || E'\\n' || " +
        "coalesce(string_agg(p.polpermissive::text || ':' || coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), ''), E'\\n' ORDER BY p.oid), '')) " +
        ApplicablePolicies + ")";

    /// <summary>The policies as <paramref name="acting"/> sees them (the role taken for this one statement's transaction).</summary>
    private static async Task<Policies> ReadPoliciesAsync(NpgsqlConnection conn, string acting, uint tableOid, CancellationToken ct)
    {
        var permissive = new List<string>();
        var restrictive = new List<string>();
        await using var batch = new NpgsqlBatch(conn);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT pg_catalog.set_config('role', $1, true)")
        {
            Parameters = { new NpgsqlParameter { Value = acting, NpgsqlDbType = NpgsqlDbType.Text } },
        });
        var cmd = new NpgsqlBatchCommand(
            $"SELECT p.polpermissive, pg_catalog.pg_get_expr(p.polqual, p.polrelid), {FingerprintSql}, NULL::text, NULL::text[] {ApplicablePolicies} " +
            $"UNION ALL SELECT NULL, NULL, {FingerprintSql}, (SELECT relname::text FROM pg_catalog.pg_class WHERE oid = $1), " +
            "ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped " +
            "AND pg_catalog.has_column_privilege($1, a.attnum, 'SELECT') ORDER BY a.attnum)");
        cmd.Parameters.Add(new() { Value = tableOid, NpgsqlDbType = NpgsqlDbType.Oid });
        batch.BatchCommands.Add(cmd);
        var fingerprint = "";
        string? name = null;
        string[] readable = [];
        await using (var r = await batch.ExecuteReaderAsync(ct))
        {
            await r.NextResultAsync(ct); // past the role
            while (await r.ReadAsync(ct))
            {
                fingerprint = r.IsDBNull(2) ? "" : r.GetString(2);
                if (!r.IsDBNull(3)) name = r.GetString(3);
                if (!r.IsDBNull(4)) readable = r.GetFieldValue<string[]>(4);
                if (r.IsDBNull(0) || r.IsDBNull(1)) continue; // the fingerprint row, or a policy with no USING (it adds nothing to reads)
                var qual = r.GetString(1);
                if (r.GetBoolean(0) && qual == "false") continue; // PostgreSQL's own deparse says it admits no row
                (r.GetBoolean(0) ? permissive : restrictive).Add("(" + qual + ")");
            }
        }
        // As PostgreSQL combines them: some permissive policy must pass, and every restrictive one; none permissive, no row.
        var expression = permissive.Count == 0 ? "false"
            : string.Join(" AND ", [$"({string.Join(" OR ", permissive)})", .. restrictive]);
        if (name is null) throw new PostgresException($"table {tableOid} does not exist", "ERROR", "ERROR", PostgresErrorCodes.UndefinedTable);
        return new Policies(fingerprint, expression, name, readable);
    }

    /// <summary>Identities (claims) one connection evaluates before a second one is taken, and the most per role.</summary>
    private const int IdentitiesPerConnection = 16, MaxConnectionsPerRole = 4;

    /// <summary>Audiences per statement: each adds two output columns, and PostgreSQL allows 1,664.</summary>
    private const int AudiencesPerStatement = 200;

    private async Task<(List<(Audience, List<VisibleChange>)> Rows, string Fingerprint)> RunAsync(NpgsqlConnection conn, string acting,
        TableInfo table, IReadOnlyList<Change> changes, List<Audience> audiences, Policies policies, CancellationToken ct)
    {
        var batch = new NpgsqlBatch(conn);
        // Policy functions run with the caller's rights, may not write here, and get the REST statement timeout whatever
        // a function of the project's set for the session.
        // The statement looks rows up one by one (each change's row by its key, each policy's lookups for one row): it
        // takes indexes where there are any, and keeps one plan. A plan PostgreSQL made while the table was small
        // read the whole table for every batch once it had grown (a table that starts empty and is streamed while it
        // fills: 31 ms a batch at 20,000 rows, 0.4 ms by its key); left to choose, it also planned the statement again
        // for about half of the batches (0.6 ms each).
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            "SELECT pg_catalog.set_config('role', $2, true), pg_catalog.set_config('transaction_read_only', 'on', true), pg_catalog.set_config('statement_timeout', $1, true), " +
            "pg_catalog.set_config('enable_seqscan', 'off', true), pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true)")
        {
            Parameters =
            {
                new NpgsqlParameter { Value = ((int)StatementTimeout.TotalMilliseconds).ToString(), NpgsqlDbType = NpgsqlDbType.Text },
                new NpgsqlParameter { Value = acting, NpgsqlDbType = NpgsqlDbType.Text },
            },
        });
        var groups = audiences.GroupBy(a => a.Identity)
            .Select(g => (Identity: g.Key, Chunks: g.Chunk(AudiencesPerStatement).Select(c => c.ToList()).ToList())).ToList();
        foreach (var (identity, chunks) in groups)
        {
            // The role again with each identity's claims — empty ones for an identity that is not signed in: code of the
            // project's that ran before (a policy function, or a request's, set_config(…, false)) cannot leave the next
            // identity in another role of the shared login or with another user's claims.
            batch.BatchCommands.Add(new NpgsqlBatchCommand(
                "SELECT pg_catalog.set_config('role', $3, true), pg_catalog.set_config('request.user_id', $1, true), pg_catalog.set_config('request.user_role', $2, true)")
            {
                Parameters =
                {
                    new NpgsqlParameter { Value = identity.UserId?.ToString() ?? "", NpgsqlDbType = NpgsqlDbType.Text },
                    new NpgsqlParameter { Value = identity.UserRole ?? "", NpgsqlDbType = NpgsqlDbType.Text },
                    new NpgsqlParameter { Value = acting, NpgsqlDbType = NpgsqlDbType.Text },
                },
            });
            foreach (var chunk in chunks) batch.BatchCommands.Add(Statement(table, changes, chunk, policies));
        }

        var results = new List<(Audience, List<VisibleChange>)>();
        var fingerprint = policies.Fingerprint;
        await using var r = await batch.ExecuteReaderAsync(ct);
        await r.NextResultAsync(ct); // past the settings
        foreach (var (identity, chunks) in groups)
        {
            await r.NextResultAsync(ct); // past the claims
            foreach (var list in chunks)
            {
                var seen = list.Select(_ => new List<VisibleChange>()).ToList();
                while (await r.ReadAsync(ct))
                {
                    var change = changes[r.GetInt32(0) - 1];
                    fingerprint = r.GetString(1);
                    var record = r.IsDBNull(2) ? null : r.GetString(2);
                    var oldKey = r.IsDBNull(3) ? null : r.GetString(3);
                    for (var i = 0; i < list.Count; i++)
                    {
                        var sees = record is not null && r.GetBoolean(4 + 2 * i);
                        var saw = oldKey is not null && r.GetBoolean(5 + 2 * i);
                        var kind = change.Op switch
                        {
                            'i' => sees ? ChangeKind.Insert : (ChangeKind?)null,
                            // Entering the view is an insert, leaving it a delete: nothing tells of the row before or after.
                            'u' => sees ? saw ? ChangeKind.Update : ChangeKind.Insert : saw ? ChangeKind.Delete : null,
                            _ => saw ? ChangeKind.Delete : null,
                        };
                        if (kind is { } k)
                            seen[i].Add(new VisibleChange(change, k, k == ChangeKind.Delete ? null : record, k == ChangeKind.Insert ? null : oldKey));
                    }
                }
                await r.NextResultAsync(ct);
                results.AddRange(list.Select((a, i) => (a, seen[i])));
            }
        }
        return (results, fingerprint);
    }

    /// <summary>
    /// One identity's statement: per change, whether it may see each image (its policies, once per image), the
    /// readable columns of the new row and the readable key of the old one, and — only on an image it may see — each
    /// audience's filters (a filter never runs on a row hidden from it: no error from it can tell anything).
    /// </summary>
    private static NpgsqlBatchCommand Statement(TableInfo table, IReadOnlyList<Change> changes, List<Audience> audiences, Policies policies)
    {
        var parameters = new List<NpgsqlParameter>
        {
            new() { Value = changes.Select(c => c.Record).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb },
            new() { Value = changes.Select(c => c.OldRecord).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb },
            new() { Value = table.Oid, NpgsqlDbType = NpgsqlDbType.Oid },
            // old_record carries the key only (all readable columns where the table has no primary key).
            new() { Value = table.PrimaryKey.Select(c => c.Name).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text },
        };
        // Inserted and updated rows are read back from the table itself, as GET reads them — real row security, the
        // columns the role may read, the row as it is now (never a version inside a transaction no one saw) — where the
        // table has a primary key the role may read. Old rows (deletes, rows leaving a view) are gone: their image is
        // judged by the policies, and only their key is sent.
        var live = table.PrimaryKey.Count > 0 && table.PrimaryKey.All(k => policies.Readable.Contains(k.Name));
        // The row image as a row of the table, named as the table: the policies' own text refers to it by that name.
        var alias = SqlText.Ident(policies.TableName);
        string AsRow(string image, string expression) =>
            $"(SELECT {expression} FROM jsonb_populate_record(NULL::{SqlText.Qualified(table.Schema, policies.TableName)}, {image}) AS {alias})";
        // CASE, not AND/OR: PostgreSQL keeps CASE's order, so a policy runs only where row security applies.
        string Visible(string image) =>
            $"CASE WHEN {image} IS NULL OR cardinality(r.cols) = 0 THEN false WHEN NOT s.rls THEN true " +
            $"ELSE coalesce({AsRow(image, policies.Expression)}, false) END";

        var sql = new StringBuilder($"""
            WITH r AS MATERIALIZED (
              SELECT coalesce(array_agg(a.attname::text), '{"{}"}') AS cols FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = $3 AND a.attnum > 0 AND NOT a.attisdropped AND pg_catalog.has_column_privilege($3, a.attnum, 'SELECT')),
            s AS MATERIALIZED (SELECT pg_catalog.row_security_active($3) AS rls, {FingerprintSql.Replace("$1", "$3")} AS fp)
            SELECT c.i::int4, s.fp,
              {(live ? "cur.j::text" : "CASE WHEN v.nv THEN (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(c.n) e WHERE e.key = ANY (r.cols))::text END")},
              CASE WHEN v.ov THEN (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(c.o) e
                                   WHERE e.key = ANY (r.cols) AND (cardinality($4::text[]) = 0 OR e.key = ANY ($4::text[])))::text END
            """);
        foreach (var a in audiences)
        {
            var condition = RestSql.FilterCondition(a.Filters, table, alias, parameters);
            var columns = RestSql.FilterColumns(a.Filters).Select(SqlText.Literal).ToList();
            // Filters on a column the role may no longer read match nothing (no oracle on what it cannot see).
            var allowed = columns.Count == 0 ? "true" : $"ARRAY[{string.Join(", ", columns)}]::text[] <@ r.cols";
            foreach (var (image, seen) in new[] { live ? ("cur.j", "cur.j IS NOT NULL") : ("c.n", "v.nv"), ("c.o", "v.ov") })
                sql.Append($",\n  CASE WHEN {seen} AND {allowed} THEN coalesce({AsRow(image, condition)}, false) ELSE false END");
        }
        // The visibility of each image once, fenced (OFFSET 0) so the filters above read its answer and never run first.
        sql.Append($"""

            FROM unnest($1::jsonb[], $2::jsonb[]) WITH ORDINALITY AS c(n, o, i) CROSS JOIN r CROSS JOIN s
            CROSS JOIN LATERAL (SELECT {(live ? "NULL::boolean" : Visible("c.n"))} AS nv, {Visible("c.o")} AS ov OFFSET 0) v
            {(live ? LiveRow(table, policies) : "")}
            ORDER BY c.i
            """);
        var cmd = new NpgsqlBatchCommand(sql.ToString());
        foreach (var p in parameters) cmd.Parameters.Add(p);
        return cmd;
    }
}
