// "View as" on a real PostgreSQL (issue 14): a SELECT in the SQL tab run as the ANON key, an end user or the DB_API_KEY
// through the REST API's logins and claims — read-only, PostgreSQL's refusal of writes shown, nothing left on the
// session — and what decided it: the Access settings and the hand-written policies (pg_policies) that apply to the role.
using DbStudio.Core.Access;
using DbStudio.Core.Auth;
using DbStudio.Core.Console;
using DbStudio.Core.Panel;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Integration;

public class ViewAsTests(TestApp app)
{
    private async Task<(HttpClient Owner, string Id, ViewAs Ann, ViewAs Bob)> SetUpAsync()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        var auth = app.Service<EndUserAuth>();
        var ann = (await auth.SignupAsync(p.Id, $"ann{Guid.NewGuid():N}@example.com", "a user password")).user;
        var bob = (await auth.SignupAsync(p.Id, $"bob{Guid.NewGuid():N}@example.com", "a user password")).user;
        await TestApp.SqlAsync(owner, p.Id, "create table notes (id serial primary key, body text, user_id uuid);" +
            $"insert into notes (body, user_id) values ('ann''s', '{ann.id}'), ('bob''s', '{bob.id}'), ('team plan', null), ('hidden', '{ann.id}')");
        return (owner, p.Id, ViewAs.User(ann), ViewAs.User(bob));
    }

    private static List<string?> Column(StatementResult r)
    {
        Assert.True(r.Error is null, $"{r.Error?.Code} {r.Error?.Message}");
        return [.. r.Rows!.Select(row => row[0])];
    }

    [Fact]
    public async Task A_select_run_as_a_rest_caller_gets_what_that_caller_would_get_read_only()
    {
        var (owner, id, ann, bob) = await SetUpAsync();
        var console = app.Service<SqlConsole>();
        Task<ViewAsRun> As(ViewAs who, string sql) => console.RunAsAsync(id, sql, who.Caller(id));

        var admin = await As(ViewAs.Admin, "select body from notes order by id");
        Assert.Equal(["ann's", "bob's", "team plan", "hidden"], Column(admin.Result));
        Assert.Equal(["notes"], admin.Tables);
        Assert.Equal(["ann's", "hidden"], Column((await As(ann, "select body from notes order by id")).Result));
        Assert.Equal(["bob's"], Column((await As(bob, "select body from notes order by id")).Result));
        // The ANON key: anon_select is off, so PostgreSQL refuses the table outright — and the run still names it.
        var anon = await As(ViewAs.Anon, "select count(*) from notes");
        Assert.Equal("42501", anon.Result.Error?.Code);
        Assert.Equal(["notes"], anon.Tables);

        // Read-only: PostgreSQL refuses writes, even the owner's, with its own message; nothing changed.
        var delete = await As(ViewAs.Admin, "delete from notes");
        Assert.Equal("25006", delete.Result.Error?.Code);
        Assert.Contains("read-only transaction", delete.Result.Error!.Message);
        Assert.Equal("25006", (await As(ann, "insert into notes (body) values ('x')")).Result.Error?.Code);
        Assert.Equal("4", (await As(ViewAs.Admin, "select count(*) from notes")).Result.Rows![0][0]);
        Assert.Equal("0A000", (await As(ann, "select 1; select 2")).Result.Error?.Code); // one statement at a time

        // Nothing a statement does to its session outlives it: a session lock taken as anon is gone with the connection,
        // and a role set for the session does not reach the next caller.
        Assert.Null((await As(ViewAs.Anon, "select pg_advisory_lock(4242)")).Result.Error);
        var locks = "select count(*) from pg_locks where locktype = 'advisory' and objid = 4242";
        for (var wait = System.Diagnostics.Stopwatch.StartNew(); (await TestApp.SqlAsync(owner, id, locks))[0].GetProperty("rows")[0][0].ToString() != "0";)
        {
            Assert.True(wait.Elapsed < TimeSpan.FromSeconds(30), "the session lock outlived the run");
            await Task.Delay(50); // the closed session's backend is ending
        }
        Assert.Null((await As(ann, $"set role proj_{id}_user_admin")).Result.Error);
        Assert.Equal(["bob's"], Column((await As(bob, "select body from notes order by id")).Result));
        Assert.Equal([$"proj_{id}_anon"], Column((await As(ViewAs.Anon, "select current_user::text")).Result));
    }

    [Fact]
    public async Task Hand_written_policies_that_apply_to_the_viewed_role_are_listed_beside_the_access_settings()
    {
        var (owner, id, ann, _) = await SetUpAsync();
        await TestApp.SqlAsync(owner, id, $"""
            create policy team_notes on notes for select to proj_{id}_user using (body like 'team%');
            create policy not_hidden on notes as restrictive for all to public using (body <> 'hidden');
            create policy anon_nothing on notes for select to proj_{id}_anon using (false);
            create policy user_inserts on notes for insert to proj_{id}_user with check (true);
            """);
        var why = app.Service<ViewAsPolicies>();

        var asAnn = (await why.ForAsync(id, ann, "notes"))!;
        Assert.Contains(asAnn.Lines, l => l.Contains("auth_select_own"));
        Assert.Equal(["not_hidden", "team_notes"], asAnn.HandWritten.Select(p => p.Name).Order()); // not anon's, not INSERT's
        var team = asAnn.HandWritten.Single(p => p.Name == "team_notes");
        Assert.Equal((true, "SELECT", $"proj_{id}_user"), (team.Permissive, team.Command, Assert.Single(team.Roles)));
        Assert.Equal("(body ~~ 'team%'::text)", team.Using);
        var restrictive = asAnn.HandWritten.Single(p => p.Name == "not_hidden");
        Assert.Equal((false, "ALL", "public"), (restrictive.Permissive, restrictive.Command, Assert.Single(restrictive.Roles)));
        // …and they are what PostgreSQL applied: her own row and the team's, not the hidden one.
        var rows = await app.Service<SqlConsole>().RunAsAsync(id, "select body from notes order by id", ann.Caller(id));
        Assert.Equal(["ann's", "team plan"], Column(rows.Result));

        Assert.Equal(["anon_nothing", "not_hidden"], (await why.ForAsync(id, ViewAs.Anon, "notes"))!.HandWritten.Select(p => p.Name).Order());
        // The DB_API_KEY bypasses every policy — until the table forces row-level security on its owner too.
        Assert.Empty((await why.ForAsync(id, ViewAs.Admin, "notes"))!.HandWritten);
        await TestApp.SqlAsync(owner, id, "alter table notes force row level security");
        var forced = (await why.ForAsync(id, ViewAs.Admin, "notes"))!;
        Assert.Contains("FORCE ROW LEVEL SECURITY", Assert.Single(forced.Lines));
        Assert.Equal(["not_hidden"], forced.HandWritten.Select(p => p.Name));
        Assert.Null(await why.ForAsync(id, ViewAs.Admin, "no_such_table"));
    }
}
