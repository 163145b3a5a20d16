// Rows per table for the project page's chart: exact for small tables, the planner's estimate for large ones. The
// counts run as the project's owner on the project's own login (a count runs the table's policies, which are project
// code); the estimates are read from the catalog.
using DbStudio.Core.Projects;
using DbStudio.Core.Sql;
using Npgsql;

namespace DbStudio.Core.Panel;

public sealed record TableRows(string Table, long Rows, bool Estimated);

public sealed class ProjectOverview(Platform.ProjectServers servers, Projects.RestConnections connections)
{
    public const long ExactBelow = 100_000;

    public async Task<List<TableRows>> RowsPerTableAsync(string projectId, CancellationToken ct = default)
    {
        var estimates = new List<(string Table, long Estimate)>();
        await using (var cmd = (await servers.OfAsync(projectId, ct)).DataSource.CreateCommand(
            "SELECT c.relname, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
            "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname"))
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = ProjectNaming.Schema(projectId) });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) estimates.Add((r.GetString(0), r.GetInt64(1)));
        }
        var small = estimates.Where(e => e.Estimate < ExactBelow).ToList(); // -1 = never analyzed: count it
        var exact = new Dictionary<string, long>();
        if (small.Count > 0)
        {
            var schema = ProjectNaming.Schema(projectId);
            var sql = string.Join(" UNION ALL ", small.Select((e, i) =>
                $"SELECT ${i + 1}::text, count(*) FROM {SqlText.Qualified(schema, e.Table)}"));
            await connections.AsOwnerAsync(projectId, async conn =>
            {
                await using var cmd = new NpgsqlCommand(sql, conn);
                foreach (var e in small) cmd.Parameters.Add(new NpgsqlParameter { Value = e.Table });
                await using var r = await cmd.ExecuteReaderAsync(ct);
                while (await r.ReadAsync(ct)) exact[r.GetString(0)] = r.GetInt64(1);
                return true;
            }, ct);
        }
        return estimates.Select(e => exact.TryGetValue(e.Table, out var n) ? new TableRows(e.Table, n, false)
            : new TableRows(e.Table, e.Estimate, true)).ToList();
    }
}
