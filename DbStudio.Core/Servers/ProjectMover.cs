// Moves a project to another PostgreSQL server of the pool (issue 17). In order:
//  1. pause: the project is marked as moving in platform metadata and every instance is told (PlatformSignals): its
//     requests wait (ProjectServers.OfAsync; a 503 past DbStudio's move wait), and its logins on the old server are
//     shut — the owner and three REST logins NOLOGIN, the fourth (rest_owner) with a password only this move knows —
//     and every session of theirs is ended and gone before anything is copied, so nothing is written meanwhile;
//  2. copy: roles and an empty schema are made on the new server as at creation; the schema's objects and data are
//     dumped with pg_dump -n on the project's own login (rest_owner acting as the owner: the platform's login never
//     reads a project's rows or runs its code) and restored with pg_restore as the project's owner there; the change
//     log follows (ids go on, moved tables' OIDs remapped);
//  3. check: the row count of every table and every sequence's position, on both copies, as the owner;
//  4. switch: metadata names the new server (access settings and stream ids follow the tables' new OIDs) and every
//     instance starts over for the project (pools, caches, open streams end and resume with Last-Event-ID);
//  5. the new copy answers on the project's own REST login there, and only then the old copy is dropped.
// A failure before the switch gives the move up: the new copy is dropped and the old one opened again.
using System.Diagnostics;
using System.Text.RegularExpressions;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using DbStudio.Core.Sql;
using DbStudio.Core.Streams;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Servers;

/// <summary>What a move did: the tables' row counts (equal on both copies), sequences checked, changes of the log copied,
/// and how long the project's requests waited.</summary>
public sealed record MoveReport(string ProjectId, string From, string To, IReadOnlyDictionary<string, long> Rows, int Sequences,
    long Changes, TimeSpan Paused, bool OldCopyDropped);

/// <summary>The move cannot be made (an unknown server, the same one, a move already under way), or was given up.</summary>
public sealed class MoveRefusedException(string message, Exception? inner = null) : Exception(message, inner);

public sealed class ProjectMover(ProjectServers servers, IDbContextFactory<PlatformDbContext> contexts, SecretProtector protector,
    ProjectLogins logins, RestConnections rest, OwnerConnections owners, PlatformSignals signals, IOptions<DbStudioOptions> options,
    ILogger<ProjectMover> log)
{
    public async Task<MoveReport> MoveAsync(string id, string to, CancellationToken ct = default)
    {
        if (!ProjectNaming.IsValidId(id)) throw new KeyNotFoundException($"project {id} does not exist");
        if (!servers.All.Any(s => s.Name == to)) throw new MoveRefusedException($"No server is named \"{to}\"");
        var target = servers.Named(to);
        var source = await servers.OfAsync(id, ct);
        if (source == target) throw new MoveRefusedException($"Project {id} is on {to} already");
        // Its REST logins exist on the old server before the move shuts them (the dump logs in as one of them).
        await logins.EnsureAsync(id, renew: false, ct);
        var ownerPassword = await OwnerPasswordAsync(id, ct);

        var paused = Stopwatch.StartNew();
        await SetMovingAsync(id, to, ct);
        var dumpPassword = ProjectNaming.NewPassword();
        var work = Directory.CreateTempSubdirectory("dbstudio-move-");
        var created = false;
        IReadOnlyDictionary<string, long> rows;
        int sequences;
        long changes;
        try
        {
            servers.Forget(id);
            await signals.PublishAsync(PlatformSignals.Topics.Moving, id, ct);
            await ShutAsync(source, id, dumpPassword, ct);
            rest.Forget(id);
            owners.Forget(id);
            await UntilNoSessionsAsync(source, id, ct);
            var dump = Path.Combine(work.FullName, "project.dump");
            await RunAsync("pg_dump", source, ProjectLogins.LoginRole(id, RestRole.Owner), dumpPassword, ct,
                "--role", ProjectNaming.OwnerRole(id), "--schema", ProjectNaming.Schema(id), "--format", "custom", "--file", dump);
            await CreateAsync(target, id, ownerPassword, ct);
            created = true;
            await RestoreAsync(target, id, ownerPassword, dump, ct);
            (rows, sequences) = await CheckAsync(source, target, id, dumpPassword, ownerPassword, ct);
            var oids = await TableOidsAsync(source, target, id, ct);
            changes = await ChangeLog.CopyProjectAsync(id, source, target, oids, ct);
            await SwitchAsync(id, target, oids, ct);
        }
        catch (Exception e)
        {
            log.LogWarning("Moving project {Project} to {Server} failed ({Message}); it stays on {Source}", id, to, e.Message, source.Name);
            await GiveUpAsync(id, source, target, created, ownerPassword);
            throw new MoveRefusedException($"The move was given up; the project stays on {source.Name}: {e.Message}", e);
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { /* best effort */ }
        }
        paused.Stop();
        servers.Resume(id);
        await signals.PublishAsync(PlatformSignals.Topics.Moved, id, ct);

        // The new copy answers on the project's own REST login there (made now) before the old copy is dropped.
        await rest.AsOwnerAsync(id, async conn =>
        {
            await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace", conn);
            return await cmd.ExecuteScalarAsync(ct);
        }, ct);
        var dropped = true;
        try { await DropOldAsync(source, id, dumpPassword, ct); }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            // The project is on its new server either way; what is left on the old one is shut (no login) and unused.
            log.LogWarning("Moved project {Project}, but dropping its old copy on {Server} failed: {Message}", id, source.Name, e.Message);
            dropped = false;
        }
        log.LogInformation("Moved project {Project} from {From} to {To}: {Tables} tables, {Changes} changes, requests waited {Paused} ms",
            id, source.Name, to, rows.Count, changes, (int)paused.ElapsedMilliseconds);
        return new MoveReport(id, source.Name, to, rows, sequences, changes, paused.Elapsed, dropped);
    }

    private async Task<string> OwnerPasswordAsync(string id, CancellationToken ct)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var secret = await db.ProjectSecrets.AsNoTracking()
            .Where(s => s.ProjectId == id && s.Kind == ProjectSecretKind.OwnerPassword).Select(s => s.Protected).SingleOrDefaultAsync(ct)
            ?? throw new KeyNotFoundException($"project {id} does not exist");
        return protector.Unprotect(secret);
    }

    private async Task SetMovingAsync(string id, string to, CancellationToken ct)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var marked = await db.Projects.Where(p => p.Id == id && p.MovingTo == null)
            .ExecuteUpdateAsync(u => u.SetProperty(p => p.MovingTo, to), ct);
        if (marked == 0) throw new MoveRefusedException($"Project {id} is being moved already");
    }

    /// <summary>The project's logins on <paramref name="source"/>: all shut but rest_owner, whose password only the move knows.</summary>
    private static string[] Logins(string id) => [ProjectNaming.OwnerRole(id), .. ProjectLogins.LoginRoles(id)];

    private static async Task ShutAsync(DbServer source, string id, string dumpPassword, CancellationToken ct)
    {
        var sql = $"ALTER ROLE {SqlText.Ident(ProjectNaming.OwnerRole(id))} NOLOGIN;";
        foreach (var role in new[] { RestRole.Anon, RestRole.User, RestRole.UserAdmin })
            sql += $"ALTER ROLE {SqlText.Ident(ProjectLogins.LoginRole(id, role))} NOLOGIN;";
        sql += $"ALTER ROLE {SqlText.Ident(ProjectLogins.LoginRole(id, RestRole.Owner))} LOGIN PASSWORD {SqlText.Literal(Scram.Verifier(dumpPassword, iterations: 16))};";
        await using var cmd = source.DataSource.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Ends every session of the project's logins on the server and waits until they are gone (a commit under way
    /// finishes first, and is then in the dump).</summary>
    private static async Task UntilNoSessionsAsync(DbServer server, string id, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            await using var cmd = server.DataSource.CreateCommand(
                "SELECT count(*) FILTER (WHERE NOT pg_terminate_backend(pid)) + count(*) FROM pg_stat_activity WHERE usename = ANY($1)");
            cmd.Parameters.Add(new NpgsqlParameter { Value = Logins(id) });
            if ((long)(await cmd.ExecuteScalarAsync(ct))! == 0) return;
            if (deadline.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException($"Sessions of project {id} did not end");
            await Task.Delay(50, ct);
        }
    }

    private async Task CreateAsync(DbServer target, string id, string ownerPassword, CancellationToken ct)
    {
        await using var conn = await target.DataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await ProjectProvisioner.CreateAsync(conn, tx, id, ownerPassword, options.Value.OwnerConnectionLimit, ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>Restores the dump into the schema made at creation, as the project's owner (whatever code of the project's
    /// a restore sets off — a check constraint's function, an index expression — runs in the owner's session).</summary>
    private static async Task RestoreAsync(DbServer target, string id, string ownerPassword, string dump, CancellationToken ct)
    {
        var list = await RunAsync("pg_restore", null, null, null, ct, "--list", dump);
        // The schema itself exists already (made at creation, with its grants and default privileges).
        var schemaEntry = new Regex($@"^\d+; \d+ \d+ SCHEMA - {Regex.Escape(ProjectNaming.Schema(id))} ", RegexOptions.Multiline);
        var listFile = dump + ".list";
        await File.WriteAllTextAsync(listFile, schemaEntry.Replace(list, m => ";" + m.Value), ct);
        await RunAsync("pg_restore", target, ProjectNaming.OwnerRole(id), ownerPassword, ct,
            "--no-owner", "--single-transaction", "--exit-on-error", "--use-list", listFile, dump);
    }

    /// <summary>Row counts of every table and the position of every sequence, equal on both copies (as the owner on each).</summary>
    private static async Task<(IReadOnlyDictionary<string, long> Rows, int Sequences)> CheckAsync(DbServer source, DbServer target, string id,
        string dumpPassword, string ownerPassword, CancellationToken ct)
    {
        var before = await CountsAsync(source, ProjectLogins.LoginRole(id, RestRole.Owner), dumpPassword, id, ct);
        var after = await CountsAsync(target, ProjectNaming.OwnerRole(id), ownerPassword, id, ct);
        foreach (var (name, n) in before.Rows)
            if (after.Rows.GetValueOrDefault(name, -1) != n)
                throw new InvalidOperationException($"Table {name}: {n} rows before the move, {after.Rows.GetValueOrDefault(name, -1)} after");
        foreach (var (name, v) in before.Sequences)
            if (after.Sequences.GetValueOrDefault(name) != v)
                throw new InvalidOperationException($"Sequence {name}: at {v} before the move, {after.Sequences.GetValueOrDefault(name)} after");
        if (after.Rows.Count != before.Rows.Count) throw new InvalidOperationException("The copy has other tables than the original");
        return (before.Rows, before.Sequences.Count);
    }

    private static async Task<(Dictionary<string, long> Rows, Dictionary<string, string?> Sequences)> CountsAsync(DbServer server, string login,
        string password, string id, CancellationToken ct)
    {
        await using var conn = await OpenAsync(server, login, password, ct);
        var schema = ProjectNaming.Schema(id);
        await using (var role = new NpgsqlCommand($"SET ROLE {SqlText.Ident(ProjectNaming.OwnerRole(id))}", conn))
            await role.ExecuteNonQueryAsync(ct);
        var tables = new List<string>();
        await using (var cmd = new NpgsqlCommand(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1", conn))
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = schema });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) tables.Add(r.GetString(0));
        }
        var rows = new Dictionary<string, long>();
        foreach (var t in tables)
        {
            await using var count = new NpgsqlCommand($"SELECT count(*) FROM ONLY {SqlText.Qualified(schema, t)}", conn);
            rows[t] = (long)(await count.ExecuteScalarAsync(ct))!;
        }
        var sequences = new Dictionary<string, string?>();
        await using (var seq = new NpgsqlCommand(
            "SELECT sequencename, last_value::text FROM pg_sequences WHERE schemaname = $1", conn))
        {
            seq.Parameters.Add(new NpgsqlParameter { Value = schema });
            await using var r = await seq.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) sequences[r.GetString(0)] = r.IsDBNull(1) ? null : r.GetString(1);
        }
        return (rows, sequences);
    }

    /// <summary>Each table's OID on the old server and on the new one (by name).</summary>
    private static async Task<Dictionary<uint, uint>> TableOidsAsync(DbServer source, DbServer target, string id, CancellationToken ct)
    {
        async Task<Dictionary<string, uint>> Read(DbServer server)
        {
            var result = new Dictionary<string, uint>();
            await using var cmd = server.DataSource.CreateCommand(
                "SELECT c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')");
            cmd.Parameters.Add(new NpgsqlParameter { Value = ProjectNaming.Schema(id) });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) result[r.GetString(0)] = r.GetFieldValue<uint>(1);
            return result;
        }
        var before = await Read(source);
        var after = await Read(target);
        return before.Where(kv => after.ContainsKey(kv.Key)).ToDictionary(kv => kv.Value, kv => after[kv.Key]);
    }

    /// <summary>Metadata names the new server; access settings and stream ids follow the tables' new OIDs.</summary>
    private async Task SwitchAsync(string id, DbServer target, Dictionary<uint, uint> oids, CancellationToken ct)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Projects.Where(p => p.Id == id).ExecuteUpdateAsync(u => u.SetProperty(p => p.Server, target.Name).SetProperty(p => p.MovingTo, (string?)null), ct);
        var olds = oids.Keys.Select(o => (long)o).ToArray();
        var news = oids.Values.Select(o => (long)o).ToArray();
        await db.Database.ExecuteSqlRawAsync("""
            UPDATE platform.table_access a SET "TableOid" = m.new::oid FROM unnest({1}::bigint[], {2}::bigint[]) AS m(old, new)
            WHERE a."ProjectId" = {0} AND a."TableOid" = m.old::oid;
            UPDATE platform.table_moves t SET new_oid = m.new::oid FROM unnest({1}::bigint[], {2}::bigint[]) AS m(old, new)
            WHERE t.project_id = {0} AND t.new_oid = m.old::oid;
            INSERT INTO platform.table_moves (project_id, old_oid, new_oid)
            SELECT {0}, m.old::oid, m.new::oid FROM unnest({1}::bigint[], {2}::bigint[]) AS m(old, new) ON CONFLICT DO NOTHING;
            """, [id, olds, news], ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>The move failed before the switch: the new copy goes, the old one opens again, requests go on there.</summary>
    private async Task GiveUpAsync(string id, DbServer source, DbServer target, bool created, string ownerPassword)
    {
        try
        {
            if (created)
            {
                try
                {
                    await using (var owner = await OpenAsync(target, ProjectNaming.OwnerRole(id), ownerPassword, CancellationToken.None))
                    await using (var drop = new NpgsqlCommand(ProjectProvisioner.DropOwnedSql(id), owner))
                        await drop.ExecuteNonQueryAsync();
                }
                catch (NpgsqlException e) { log.LogWarning("Dropping the new copy's objects failed: {Message}", e.Message); }
                await using var conn = await target.DataSource.OpenConnectionAsync();
                await using var tx = await conn.BeginTransactionAsync();
                await ProjectProvisioner.DropAsync(conn, tx, id, CancellationToken.None);
                await tx.CommitAsync();
                await ChangeLog.DropOnAsync(target, id, CancellationToken.None);
            }
            await using (var open = source.DataSource.CreateCommand($"ALTER ROLE {SqlText.Ident(ProjectNaming.OwnerRole(id))} LOGIN"))
                await open.ExecuteNonQueryAsync();
            await using (var db = await contexts.CreateDbContextAsync())
                await db.Projects.Where(p => p.Id == id).ExecuteUpdateAsync(u => u.SetProperty(p => p.MovingTo, (string?)null));
            await logins.EnsureAsync(id, renew: true, CancellationToken.None); // LOGIN again, with a password of their own
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            log.LogError(e, "Giving up the move of project {Project} did not finish: see its logins on {Server}", id, source.Name);
        }
        servers.Resume(id);
        await signals.PublishAsync(PlatformSignals.Topics.Moved, id, CancellationToken.None);
    }

    /// <summary>Drops the old copy: its objects by the project's owner (on the project's login), then its roles and log.</summary>
    private static async Task DropOldAsync(DbServer source, string id, string dumpPassword, CancellationToken ct)
    {
        await using (var owner = await OpenAsync(source, ProjectLogins.LoginRole(id, RestRole.Owner), dumpPassword, ct))
        {
            await using (var role = new NpgsqlCommand($"SET ROLE {SqlText.Ident(ProjectNaming.OwnerRole(id))}", owner))
                await role.ExecuteNonQueryAsync(ct);
            await using var drop = new NpgsqlCommand(ProjectProvisioner.DropOwnedSql(id), owner);
            await drop.ExecuteNonQueryAsync(ct);
        }
        await using var conn = await source.DataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await ProjectProvisioner.DropAsync(conn, tx, id, ct);
        await tx.CommitAsync(ct);
        await ChangeLog.DropOnAsync(source, id, ct);
    }

    private static async Task<NpgsqlConnection> OpenAsync(DbServer server, string login, string password, CancellationToken ct)
    {
        var conn = new NpgsqlConnection(new NpgsqlConnectionStringBuilder
        {
            Host = server.Host, Port = server.Port, Database = server.Database, SslMode = server.SslMode,
            Username = login, Password = password, Pooling = false, ApplicationName = "dbstudio-move",
        }.ConnectionString);
        try
        {
            await conn.OpenAsync(ct);
            return conn;
        }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs pg_dump or pg_restore (the machine's, as the embedded cluster's) and returns its output.</summary>
    private static async Task<string> RunAsync(string program, DbServer? server, string? login, string? password, CancellationToken ct,
        params string[] args)
    {
        var bin = Postgres.PgBinaries.Find() ?? throw new Postgres.PgBinariesNotFoundException();
        var psi = new ProcessStartInfo(Path.Combine(bin, program)) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (server is not null)
        {
            foreach (var a in (string[])["--host", server.Host, "--port", server.Port.ToString(), "--username", login!, "--dbname", server.Database, "--no-password"])
                psi.ArgumentList.Add(a);
            psi.Environment["PGPASSWORD"] = password; // never on the command line
            psi.Environment["PGSSLMODE"] = server.SslMode.ToString().ToLowerInvariant() switch
            {
                "verifyca" => "verify-ca", "verifyfull" => "verify-full", var m => m,
            };
        }
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"{program} did not start");
        var output = p.StandardOutput.ReadToEndAsync(ct);
        var error = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        if (p.ExitCode != 0) throw new InvalidOperationException($"{program} failed: {(await error).Trim()}");
        return await output;
    }
}
