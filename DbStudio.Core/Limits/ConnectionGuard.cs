// Fair shares of the server's connection slots (issue 12). PostgreSQL enforces each project login's CONNECTION LIMIT
// (owner: DbStudio:OwnerConnectionLimit; REST logins: Rest:LoginConnectionLimit); this guard
//  - re-applies those limits, once at start-up, to the logins of every existing project whose limit differs (projects
//    made before the limits, or before an operator changed them; new logins get them when they are made) — the only
//    pass over all projects, so the periodic checks below cost the same with 10 or 10,000 projects, and
//  - keeps Limits:ReservedConnections slots free for the platform, as PostgreSQL 16's reserved_connections would:
//    per-project limits bound one project, but not how many projects hold connections at once. When fewer slots are
//    free, it ends the newest sessions of the owner logins (Connection URL clients first, the console's own last),
//    taking from the projects that hold the most;
//  - keeps PostgreSQL's NOTIFY queue from filling: it cannot be trimmed past the oldest transaction of a session that
//    LISTENs, so a tenant that listens, keeps a transaction open and floods notifications would fill it (8 GB), after
//    which every NOTIFY — every captured write of every project, every platform signal — fails at commit. Past
//    Limits:NotifyQueueUsage, project sessions whose transaction is older than Limits:NotifyHolderAge are ended.
// It reads only the catalog and pg_stat_activity and needs pg_signal_backend to end sessions (PlatformBootstrap grants
// it; on an existing server: GRANT pg_signal_backend TO <platform role>). Each PostgreSQL server is looked after on its
// own (ProjectServers): its projects' logins, its slots, its NOTIFY queue.
using DbStudio.Core.Platform;
using DbStudio.Core.Sql;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Limits;

public sealed class ConnectionGuard(ProjectServers servers, IOptions<DbStudioOptions> options, TimeProvider clock,
    ILogger<ConnectionGuard> log) : BackgroundService
{
    private readonly DbStudioOptions _options = options.Value;
    private bool _warnedNoSignal;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var period = _options.Limits.ConnectionCheckPeriod;
        if (period <= TimeSpan.Zero) return;
        using var timer = new PeriodicTimer(period, clock);
        var applied = false;
        do
        {
            try
            {
                if (!applied) { await ApplyLimitsAsync(stoppingToken); applied = true; }
                await KeepReserveAsync(stoppingToken);
                await KeepNotifyQueueAsync(stoppingToken);
            }
            catch (NpgsqlException e) when (!stoppingToken.IsCancellationRequested)
            {
                log.LogDebug(e, "Connection check skipped"); // the database is away: the next tick tries again
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Never take the host down (a BackgroundService's exception stops it): say so and look again next time.
                log.LogWarning(e, "Connection check failed");
            }
        } while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>Sets CONNECTION LIMIT on every project login whose limit differs from the configured one. Returns how many changed.</summary>
    public async Task<int> ApplyLimitsAsync(CancellationToken ct = default)
    {
        var changed = 0;
        foreach (var server in servers.All) changed += await ApplyLimitsAsync(server, ct);
        if (changed > 0) log.LogInformation("Applied connection limits to {Count} project logins", changed);
        return changed;
    }

    private async Task<int> ApplyLimitsAsync(DbServer server, CancellationToken ct)
    {
        var platform = server.DataSource;
        var changes = new List<(string Role, int Limit)>();
        await using (var cmd = platform.CreateCommand("""
            SELECT r.rolname, w.wanted
            FROM unnest($3::text[]) AS p("Id")
            CROSS JOIN LATERAL (VALUES ('proj_' || p."Id" || '_owner', $1), ('proj_' || p."Id" || '_rest', $2),
                ('proj_' || p."Id" || '_rest_owner', $2)) w(name, wanted)
            JOIN pg_roles r ON r.rolname = w.name
            WHERE r.rolcanlogin AND r.rolconnlimit <> w.wanted
            """))
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = _options.OwnerConnectionLimit });
            cmd.Parameters.Add(new NpgsqlParameter { Value = _options.Rest.EffectiveLoginConnectionLimit });
            cmd.Parameters.Add(new NpgsqlParameter { Value = await servers.ProjectsOnAsync(server, ct) });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) changes.Add((r.GetString(0), r.GetInt32(1)));
        }
        var changed = 0;
        foreach (var (role, limit) in changes)
        {
            try
            {
                await using var alter = platform.CreateCommand($"ALTER ROLE {SqlText.Ident(role)} CONNECTION LIMIT {limit}");
                await alter.ExecuteNonQueryAsync(ct);
                changed++;
            }
            catch (PostgresException e)
            {
                // Dropped meanwhile (a project deletion), or changed at the same moment: the next check looks again.
                log.LogDebug(e, "Could not set the connection limit of {Role}", role);
            }
        }
        return changed;
    }

    /// <summary>
    /// Ends project sessions with a long-open transaction while PostgreSQL's NOTIFY queue is fuller than
    /// Limits:NotifyQueueUsage (one of them holds it). Returns how many it ended.
    /// </summary>
    public async Task<int> KeepNotifyQueueAsync(CancellationToken ct = default)
    {
        var ended = 0;
        foreach (var server in servers.All) ended += await KeepNotifyQueueAsync(server, ct);
        return ended;
    }

    private async Task<int> KeepNotifyQueueAsync(DbServer server, CancellationToken ct)
    {
        var threshold = _options.Limits.NotifyQueueUsage;
        if (threshold <= 0) return 0;
        await using (var usage = server.DataSource.CreateCommand("SELECT pg_notification_queue_usage()"))
            if ((double)(await usage.ExecuteScalarAsync(ct))! < threshold) return 0;
        var (ended, _) = await EndSessionsAsync(server.DataSource, """
            SELECT a.pid, a.usename FROM pg_stat_activity a
            WHERE a.usename LIKE 'proj\_%' AND a.xact_start < now() - $1 AND a.pid <> pg_backend_pid()
            ORDER BY a.xact_start
            """, [_options.Limits.NotifyHolderAge], ct);
        if (ended > 0)
            log.LogWarning("PostgreSQL's NOTIFY queue is filling: ended {Ended} project sessions open in one transaction for longer than {Age}",
                ended, _options.Limits.NotifyHolderAge);
        return ended;
    }

    /// <summary>Ends the sessions <paramref name="select"/> (pid, role; one parameter) names. Allowed is false when the
    /// platform role may not (no pg_signal_backend).</summary>
    private async Task<(int Ended, bool Allowed)> EndSessionsAsync(NpgsqlDataSource platform, string select, object[] parameters,
        CancellationToken ct)
    {
        var victims = new List<(int Pid, string Role)>();
        await using (var cmd = platform.CreateCommand(select))
        {
            foreach (var parameter in parameters) cmd.Parameters.Add(new NpgsqlParameter { Value = parameter });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) victims.Add((r.GetInt32(0), r.GetString(1)));
        }
        var ended = 0;
        foreach (var (pid, role) in victims)
        {
            try
            {
                await using var kill = platform.CreateCommand("SELECT pg_terminate_backend($1)");
                kill.Parameters.Add(new NpgsqlParameter { Value = pid });
                if (await kill.ExecuteScalarAsync(ct) is true) ended++;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege) { return (ended, false); }
            log.LogDebug("Ended session {Pid} of {Role}", pid, role);
        }
        return (ended, true);
    }

    /// <summary>
    /// Ends owner-login sessions while fewer than Limits:ReservedConnections slots are free. Returns how many it ended.
    /// </summary>
    public async Task<int> KeepReserveAsync(CancellationToken ct = default)
    {
        var ended = 0;
        foreach (var server in servers.All) ended += await KeepReserveAsync(server, ct);
        return ended;
    }

    private async Task<int> KeepReserveAsync(DbServer server, CancellationToken ct)
    {
        var reserve = _options.Limits.ReservedConnections;
        if (reserve <= 0) return 0;
        var platform = server.DataSource;
        // Sessions of other roles show only some columns to the platform role: count every row that has a role
        // (client backends; parallel workers too, which errs on the side of ending more).
        int free;
        await using (var cmd = platform.CreateCommand("""
            SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
                   - (SELECT count(*) FROM pg_stat_activity WHERE usesysid IS NOT NULL)::int
            """))
            free = (int)(await cmd.ExecuteScalarAsync(ct))!;
        if (free >= reserve) return 0;

        var need = reserve - free;
        var (ended, allowed) = await EndSessionsAsync(platform, """
            SELECT a.pid, a.usename
            FROM pg_stat_activity a
            JOIN unnest($2::text[]) AS p("Id") ON a.usename = 'proj_' || p."Id" || '_owner'
            ORDER BY a.application_name = 'dbstudio-console', count(*) OVER (PARTITION BY a.usename) DESC, a.pid DESC
            LIMIT $1
            """, [need, await servers.ProjectsOnAsync(server, ct)], ct);
        if (!allowed && !_warnedNoSignal)
        {
            log.LogWarning("Only {Free} connection slots are free (reserve: {Reserve}) but the platform role may not end " +
                           "project sessions: GRANT pg_signal_backend TO it", free, reserve);
            _warnedNoSignal = true;
        }
        if (ended > 0)
            log.LogWarning("Only {Free} connection slots were free (reserve: {Reserve}): ended {Ended} sessions of project owner logins",
                free, reserve, ended);
        return ended;
    }
}
