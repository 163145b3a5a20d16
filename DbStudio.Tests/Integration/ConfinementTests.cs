// A project's SQL cannot read or change another project's data or the platform schema, and cannot gain
// privileges: PostgreSQL itself refuses (no text filter is involved). Checked through the console and
// through the Connection URL.
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Npgsql;

namespace DbStudio.Tests.Integration;

public class ConfinementTests(TestApp app)
{
    /// <summary>Each takes {victim} (the other project's id) and {platformPid}; every one must fail.</summary>
    public static readonly (string Name, string Sql)[] Hostile =
    [
        ("other schema by name", "SELECT * FROM proj_{victim}.secrets"),
        ("other schema write", "INSERT INTO proj_{victim}.secrets VALUES (99, 'x')"),
        ("other schema delete", "DELETE FROM proj_{victim}.secrets"),
        ("search_path then read", "SET search_path = proj_{victim}; SELECT * FROM secrets"),
        ("RESET ROLE then read", "RESET ROLE; SELECT * FROM proj_{victim}.secrets"),
        ("SET ROLE other owner", "SET ROLE proj_{victim}_owner"),
        ("SET ROLE other anon", "SET ROLE proj_{victim}_anon"),
        ("SET ROLE other admin end user", "SET ROLE proj_{victim}_user_admin"),
        ("set_config role", "SELECT set_config('role', 'proj_{victim}_owner', false)"),
        ("SET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION proj_{victim}_owner"),
        ("grant other owner to self", "GRANT proj_{victim}_owner TO current_user"),
        ("grant platform role to self", "GRANT dbstudio_test TO current_user"),
        ("drop other schema", "DROP SCHEMA proj_{victim} CASCADE"),
        ("drop other table", "DROP TABLE proj_{victim}.secrets"),
        ("alter other schema owner", "ALTER SCHEMA proj_{victim} OWNER TO current_user"),
        ("grant on other schema", "GRANT ALL ON SCHEMA proj_{victim} TO current_user"),
        ("create table in public", "CREATE TABLE public.x (id int)"),
        ("create schema", "CREATE SCHEMA evil"),
        ("create database", "CREATE DATABASE evil"),
        ("pg_read_file", "SELECT pg_read_file('/etc/passwd')"),
        ("pg_ls_dir", "SELECT * FROM pg_ls_dir('.')"),
        ("COPY TO PROGRAM", "COPY (SELECT 1) TO PROGRAM 'id'"),
        ("COPY FROM file", "CREATE TABLE IF NOT EXISTS mine (t text); COPY mine FROM '/etc/passwd'"),
        ("lo_import", "SELECT lo_import('/etc/passwd')"),
        ("untrusted extension", "CREATE EXTENSION plperlu"),
        ("dblink extension", "CREATE EXTENSION dblink"),
        ("C language function", "CREATE FUNCTION evil() RETURNS int AS '/lib/x86_64-linux-gnu/libc.so.6', 'getpid' LANGUAGE c"),
        ("ALTER SYSTEM", "ALTER SYSTEM SET log_statement = 'all'"),
        ("CREATE ROLE", "CREATE ROLE evil"),
        ("ALTER ROLE superuser", "ALTER ROLE current_user SUPERUSER"),
        ("ALTER ROLE createrole", "ALTER ROLE current_user CREATEROLE"),
        ("ALTER ROLE bypassrls", "ALTER ROLE current_user BYPASSRLS"),
        ("other owner password", "ALTER ROLE proj_{victim}_owner PASSWORD 'pwned'"),
        ("LOAD library", "LOAD '/lib/x86_64-linux-gnu/libc.so.6'"),
        ("terminate platform session", "SELECT pg_terminate_backend({platformPid})"),
        ("cancel platform session", "SELECT pg_cancel_backend({platformPid})"),
        ("read pg_authid", "SELECT rolname, rolpassword FROM pg_authid"),
        ("read pg_shadow", "SELECT usename, passwd FROM pg_shadow"),
        ("read platform users", "SELECT * FROM platform.\"AspNetUsers\""),
        ("read platform secrets", "SELECT * FROM platform.project_secrets"),
        ("session_replication_role", "SET session_replication_role = replica"),
        ("event trigger", "CREATE FUNCTION et() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$; CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION et()"),
        ("reassign owned", "REASSIGN OWNED BY current_user TO proj_{victim}_owner"),
        ("DO block reads other schema", "DO $$ BEGIN PERFORM * FROM proj_{victim}.secrets; END $$"),
        ("DO block sets role", "DO $$ BEGIN EXECUTE 'SET ROLE proj_{victim}_owner'; END $$"),
        ("DO block reads authid", "DO $$ BEGIN PERFORM rolpassword FROM pg_authid; END $$"),
        ("SECURITY DEFINER reads other schema",
          "CREATE OR REPLACE FUNCTION peek() RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN RETURN QUERY EXECUTE 'SELECT v FROM proj_{victim}.secrets'; END $$; SELECT * FROM peek()"),
        ("SECURITY DEFINER grants role",
          "CREATE OR REPLACE FUNCTION esc() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN EXECUTE 'GRANT proj_{victim}_owner TO ' || quote_ident(current_user); END $$; SELECT esc()"),
        ("SECURITY DEFINER drops schema",
          "CREATE OR REPLACE FUNCTION dropper() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN EXECUTE 'DROP SCHEMA proj_{victim} CASCADE'; END $$; SELECT dropper()"),
    ];

    private async Task<(HttpClient Attacker, ProjectInfo Mine, ProjectInfo Victim)> TwoProjectsAsync()
    {
        var victimClient = await app.NewUserClientAsync();
        var victim = await TestApp.CreateProjectAsync(victimClient, "victim");
        var setup = await TestApp.SqlAsync(victimClient, victim.Id,
            "CREATE TABLE secrets (id int primary key, v text); INSERT INTO secrets VALUES (1, 'the crown jewels')");
        Assert.All(setup, r => Assert.False(r.TryGetProperty("error", out _)));
        var attacker = await app.NewUserClientAsync();
        var mine = await TestApp.CreateProjectAsync(attacker, "attacker");
        return (attacker, mine, victim);
    }

    private async Task AssertVictimIntactAsync(ProjectInfo victim)
    {
        await using var conn = new NpgsqlConnection(ConnectionStringFromUrl(victim.ConnectionUrl));
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT string_agg(id || ':' || v, ',') FROM secrets", conn);
        Assert.Equal("1:the crown jewels", await cmd.ExecuteScalarAsync());
        await using var roles = new NpgsqlCommand(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member " +
            "WHERE r.rolname = current_user AND u.rolname LIKE 'proj\\_%' AND u.rolname <> current_user " +
            "AND u.rolname <> replace(current_user::text, '_owner', '_rest_owner')", conn); // its own REST login is
        Assert.Equal(0L, await roles.ExecuteScalarAsync()); // no other project's role became a member of ours
    }

    private async Task<int> PlatformBackendPidAsync()
    {
        // A live platform-role session for the "terminate/cancel someone else" attempts.
        var conn = new NpgsqlConnection(app.Db.PlatformConnectionString + ";Pooling=false");
        await conn.OpenAsync(TestContext.Current.CancellationToken);
        _platformConn = conn;
        return conn.ProcessID;
    }

    private NpgsqlConnection? _platformConn;

    [Fact]
    public async Task Every_hostile_statement_is_refused_by_postgres_through_the_console()
    {
        var (attacker, mine, victim) = await TwoProjectsAsync();
        var pid = await PlatformBackendPidAsync();
        var failures = new List<string>();
        foreach (var (name, template) in Hostile)
        {
            var sql = template.Replace("{victim}", victim.Id).Replace("{platformPid}", pid.ToString());
            var results = await TestApp.SqlAsync(attacker, mine.Id, sql);
            var last = results[^1];
            if (!last.TryGetProperty("error", out var error))
                failures.Add($"{name}: not refused ({last})");
            else if (error.GetProperty("code").GetString() is not ("42501" or "42883" or "42P01" or "58P01" or "0A000" or "3F000" or "22023" or "42704"))
                failures.Add($"{name}: refused with unexpected {error}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(Hostile.Length >= 25);
        Assert.Equal(System.Data.ConnectionState.Open, _platformConn!.State); // not terminated
        await _platformConn.DisposeAsync();
        await AssertVictimIntactAsync(victim);
    }

    [Fact]
    public async Task Hostile_statements_fail_the_same_way_through_the_connection_url()
    {
        var (_, mine, victim) = await TwoProjectsAsync();
        var pid = await PlatformBackendPidAsync();
        await using var conn = new NpgsqlConnection(ConnectionStringFromUrl(mine.ConnectionUrl));
        await conn.OpenAsync();
        var notRefused = new List<string>();
        foreach (var (name, template) in Hostile)
        {
            var sql = template.Replace("{victim}", victim.Id).Replace("{platformPid}", pid.ToString());
            try
            {
                await using var cmd = new NpgsqlCommand(sql, conn);
                await cmd.ExecuteNonQueryAsync();
                notRefused.Add(name);
            }
            catch (PostgresException) { /* refused by PostgreSQL: what we want */ }
        }
        Assert.Empty(notRefused);
        await _platformConn!.DisposeAsync();
        await AssertVictimIntactAsync(victim);
    }

    [Fact]
    public async Task The_owner_runs_as_its_own_role_in_its_own_schema()
    {
        var client = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(client);
        var r = await TestApp.SqlAsync(client, p.Id,
            "SELECT current_user, session_user, current_schema(), (SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls FROM pg_roles WHERE rolname = current_user)");
        var row = r[0].GetProperty("rows")[0];
        Assert.Equal($"proj_{p.Id}_owner", row[0].GetString());
        Assert.Equal($"proj_{p.Id}_owner", row[1].GetString());
        Assert.Equal($"proj_{p.Id}", row[2].GetString());
        Assert.False(row[3].GetBoolean());
    }

    [Fact]
    public async Task The_platform_role_is_not_a_superuser()
    {
        await using var conn = new NpgsqlConnection(app.Db.PlatformConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user", conn);
        await using var reader = await cmd.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.False(reader.GetBoolean(0));
        Assert.True(reader.GetBoolean(1));
    }

    internal static string ConnectionStringFromUrl(string url)
    {
        var u = new Uri(url);
        var userInfo = u.UserInfo.Split(':', 2);
        return new NpgsqlConnectionStringBuilder
        {
            Host = u.Host, Port = u.Port, Database = Uri.UnescapeDataString(u.AbsolutePath.TrimStart('/')),
            Username = Uri.UnescapeDataString(userInfo[0]), Password = Uri.UnescapeDataString(userInfo[1]), Pooling = false,
        }.ConnectionString;
    }
}
