// The assistant against a real OpenAI-compatible HTTP server (FakeModelServer): what the model is sent (the schema and
// access settings, never a secret of the project), streaming, Stop aborting the upstream request, running blocks only on
// a click and in order, typed confirmation for destructive statements, read-only auto-run, kept conversations.
using System.Net;
using System.Text.Json;
using DbStudio.Core.Assistant;
using DbStudio.Core.Console;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace DbStudio.Tests.Assistant;

public class AssistantTests(AssistantFixture fx) : IClassFixture<AssistantFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private const string Schema = """
        create table authors (id serial primary key, name text not null);
        create table posts (id bigserial primary key, title text not null, body text, author_id int references authors(id),
                            user_id uuid, published timestamptz default now());
        insert into authors (name) values ('end-user-data-Zq81');
        """;

    [Fact]
    public async Task The_model_is_sent_the_schema_and_access_settings_and_no_secret_of_the_project()
    {
        var (client, p) = await fx.ProjectAsync(Schema);
        var put = await client.PutAsJsonAsync($"/api/projects/{p.Id}/tables/posts/access", new
        {
            anon_select = true, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true,
            auth_delete_own = false, user_id_col = "user_id",
        });
        put.EnsureSuccessStatusCode();
        var seen = fx.Server.Requests.Count;
        fx.Server.Enqueue("Here is a query: ", "<sql>select count(*) from posts</sql>");
        var reply = await fx.Session(p).SendAsync("how many posts are there?", TestContext.Current.CancellationToken);

        Assert.NotNull(reply);
        Assert.Contains("select count(*) from posts", reply.Text);
        var request = fx.Server.Requests.Skip(seen).Single();
        Assert.True(request.Stream);
        Assert.Equal(AssistantFixture.Model, request.Model);
        Assert.Equal("Bearer " + AssistantFixture.ModelKey, request.Authorization); // the key goes to the endpoint, and only there
        var (role, system) = request.Messages.First();
        Assert.Equal("system", role);
        foreach (var expected in new[]
                 {
                     $"search_path = proj_{p.Id}", "### posts", "`title` text not null", "`author_id` integer → authors(id)",
                     "`id` bigint primary key", "Anyone with the ANON key can read every row.",
                     "Signed-in end users can read, update their own rows (where `user_id` = their user id).",
                     "### authors", "Anonymous visitors (ANON key alone) cannot read it.", "VARCHAR(255)", "<sql>",
                     $"{p.RestUrl}/{{table}}/stream?apikey=ANON_KEY",
                 })
            Assert.Contains(expected, system);
        Assert.Equal(("user", "how many posts are there?"), request.Messages.Last());

        // Every secret of the project is absent from everything the model received (and from the context endpoint).
        var password = Uri.UnescapeDataString(new Uri(p.ConnectionUrl).UserInfo.Split(':')[1]);
        var markdown = await client.GetStringAsync($"/api/projects/{p.Id}/assistant/context", TestContext.Current.CancellationToken);
        var secrets = new List<string> { p.AnonKey, p.ApiKey, password, p.ConnectionUrl, "end-user-data-Zq81" };
        // …and every secret the platform keeps for it (REST login password, stream key), decrypted, and their stored forms.
        await using (var conn = new Npgsql.NpgsqlConnection(fx.App.Db.PlatformConnectionString))
        {
            await conn.OpenAsync(TestContext.Current.CancellationToken);
            await using var cmd = new Npgsql.NpgsqlCommand(
                "SELECT \"Kind\", \"Protected\", \"Hash\" FROM platform.project_secrets WHERE \"ProjectId\" = $1", conn);
            cmd.Parameters.Add(new Npgsql.NpgsqlParameter { Value = p.Id });
            await using var r = await cmd.ExecuteReaderAsync(TestContext.Current.CancellationToken);
            while (await r.ReadAsync(TestContext.Current.CancellationToken))
            {
                secrets.Add(fx.Service<DbStudio.Core.Projects.SecretProtector>().Unprotect(r.GetString(1)));
                secrets.Add(r.GetString(1));
                if (!r.IsDBNull(2)) secrets.Add(r.GetString(2));
            }
        }
        // At least the owner password, ANON key, API key and REST login password (the stream key once a stream made it).
        Assert.True(secrets.Count >= 5 + 4 * 2, $"{secrets.Count} secrets");
        foreach (var text in new[] { request.Body, markdown })
            foreach (var secret in secrets)
                Assert.DoesNotContain(secret, text);
        Assert.Contains("ANON_KEY", markdown);
    }

    [Fact]
    public async Task Tokens_appear_as_they_arrive_and_the_reply_is_kept_with_the_conversation()
    {
        var (_, p) = await fx.ProjectAsync();
        var gate = new TaskCompletionSource();
        fx.Server.Enqueue(new ScriptedReply(["First words", " and the rest."], gate.Task));
        var session = fx.Session(p);
        var firstSeen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        session.Changed += () =>
        {
            if (session.Messages.LastOrDefault() is { Streaming: true, Text.Length: > 0 } m) firstSeen.TrySetResult(m.Text);
        };
        var sending = session.SendAsync("hello", TestContext.Current.CancellationToken);
        Assert.Equal("First words", await firstSeen.Task.WaitAsync(Wait)); // shown while the rest has not been sent
        Assert.True(session.Replying);
        gate.SetResult();
        var reply = await sending.WaitAsync(Wait);
        Assert.Equal("First words and the rest.", reply!.Text);
        Assert.False(reply.Streaming);

        // Kept per project: a new session (another circuit) loads it; another project has none; Clear empties it.
        var again = fx.Session(p);
        await again.LoadAsync(TestContext.Current.CancellationToken);
        Assert.Equal(["hello", "First words and the rest."], again.Messages.Select(m => m.Text));
        var (_, other) = await fx.ProjectAsync();
        var otherSession = fx.Session(other);
        await otherSession.LoadAsync(TestContext.Current.CancellationToken);
        Assert.Empty(otherSession.Messages);
        await again.ClearAsync(TestContext.Current.CancellationToken);
        var cleared = fx.Session(p);
        await cleared.LoadAsync(TestContext.Current.CancellationToken);
        Assert.Empty(cleared.Messages);
    }

    [Fact]
    public async Task Stop_aborts_the_upstream_request_and_keeps_what_arrived()
    {
        var (_, p) = await fx.ProjectAsync();
        fx.Server.Enqueue(new ScriptedReply(["Thinking about it"], Hang: true));
        var session = fx.Session(p);
        var streaming = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        session.Changed += () => { if (session.Messages.LastOrDefault() is { Streaming: true, Text.Length: > 0 }) streaming.TrySetResult(); };
        var sending = session.SendAsync("write me a long essay", TestContext.Current.CancellationToken);
        await streaming.Task.WaitAsync(Wait);
        Assert.False(fx.Server.Aborted.IsCompleted);
        session.Stop();
        await fx.Server.Aborted.WaitAsync(Wait); // the fake server saw its request aborted
        var reply = await sending.WaitAsync(Wait);
        Assert.True(reply!.Stopped);
        Assert.Equal("Thinking about it", reply.Text);
        Assert.False(session.Replying);
        var kept = fx.Session(p);
        await kept.LoadAsync(TestContext.Current.CancellationToken);
        Assert.Equal("Thinking about it\n\n(stopped)", kept.Messages.Last().Text);
    }

    [Fact]
    public async Task Three_blocks_run_only_on_a_click_in_order_and_stop_at_the_first_error()
    {
        var (client, p) = await fx.ProjectAsync();
        fx.Server.Enqueue("Three steps:\n<sql>create table first_t (n int)</sql>\n",
            "<sql>insert into first_t values ('not a number')</sql>\n<sql>create table third_t (n int)</sql>");
        var session = fx.Session(p);
        var reply = (await session.SendAsync("make two tables", TestContext.Current.CancellationToken))!;
        Assert.Equal(3, reply.Blocks!.Count);
        Assert.All(reply.Blocks, b => Assert.Equal(BlockState.Waiting, b.State));
        Assert.False(await AssistantFixture.ExistsAsync(client, p.Id, "first_t")); // nothing ran by itself

        Assert.False(await session.RunAllAsync(reply, TestContext.Current.CancellationToken));
        Assert.Equal(BlockState.Done, reply.Blocks[0].State);
        Assert.Equal(BlockState.Failed, reply.Blocks[1].State);
        Assert.StartsWith("22P02", reply.Blocks[1].Error);
        Assert.Equal(BlockState.Waiting, reply.Blocks[2].State);
        Assert.Equal(1, reply.StoppedAt);
        Assert.True(await AssistantFixture.ExistsAsync(client, p.Id, "first_t"));
        Assert.False(await AssistantFixture.ExistsAsync(client, p.Id, "third_t"));
        // Both runs are in the SQL tab's history, as the assistant's.
        var history = fx.Service<SqlHistory>().For(p.Id).Where(h => h.Source == SqlSource.Assistant).ToList();
        Assert.Contains(history, h => h.Sql.Contains("create table first_t") && h.ErrorCode is null);
        Assert.Contains(history, h => h.Sql.Contains("not a number") && h.ErrorCode == "22P02");
    }

    [Fact]
    public async Task A_drop_runs_only_after_the_typed_confirmation()
    {
        var (client, p) = await fx.ProjectAsync("create table keepme (id int)");
        fx.Server.Enqueue("<sql>drop table keepme</sql>");
        var session = fx.Session(p);
        var reply = (await session.SendAsync("drop it", TestContext.Current.CancellationToken))!;
        var drop = Assert.Single(reply.Blocks!);
        Assert.Equal(RiskLevel.Destructive, drop.Risk.Level);
        Assert.Equal("keepme", drop.Risk.ConfirmWord);

        Assert.False(await session.RunBlockAsync(drop, ct: TestContext.Current.CancellationToken));
        Assert.Equal(BlockState.NeedsConfirmation, drop.State);
        Assert.False(await session.RunBlockAsync(drop, "drop", ct: TestContext.Current.CancellationToken)); // the wrong word
        Assert.False(await session.RunAllAsync(reply, TestContext.Current.CancellationToken)); // Run all stops there too
        Assert.True(await AssistantFixture.ExistsAsync(client, p.Id, "keepme"));
        Assert.True(await session.RunBlockAsync(drop, "keepme", ct: TestContext.Current.CancellationToken));
        Assert.False(await AssistantFixture.ExistsAsync(client, p.Id, "keepme"));
    }

    [Fact]
    public async Task Reads_run_at_once_only_when_allowed_and_inside_a_read_only_transaction()
    {
        var (client, p) = await fx.ProjectAsync("""
            create table counter (n int); insert into counter values (1);
            create function bump() returns int language sql as 'update counter set n = n + 1 returning n';
            """);
        const string text = "<sql>select n from counter</sql> then <sql>select bump()</sql> then <sql>insert into counter values (5)</sql>";
        fx.Server.Enqueue(text);
        var off = fx.Session(p);
        var r1 = (await off.SendAsync("show it", TestContext.Current.CancellationToken))!;
        Assert.All(r1.Blocks!, b => Assert.Equal(BlockState.Waiting, b.State)); // not allowed: nothing ran

        fx.Server.Enqueue(text);
        var on = fx.Session(p);
        on.AutoRunReads = true;
        var r2 = (await on.SendAsync("show it", TestContext.Current.CancellationToken))!;
        Assert.Equal(BlockState.Done, r2.Blocks![0].State);
        Assert.True(r2.Blocks[0].RanAutomatically);
        Assert.Equal("1", Assert.Single(r2.Blocks[0].Results!).Rows![0][0]);
        // select bump() looks like a read, but PostgreSQL's read-only transaction refuses the write inside it.
        Assert.Equal(BlockState.Failed, r2.Blocks[1].State);
        Assert.StartsWith("25006", r2.Blocks[1].Error);
        Assert.Equal(BlockState.Waiting, r2.Blocks[2].State); // a write never runs by itself
        var n = await TestApp.SqlAsync(client, p.Id, "select n from counter order by n");
        Assert.Equal(1, n[0].GetProperty("rowCount").GetInt32()); // no insert
        Assert.Equal(1, n[0].GetProperty("rows")[0][0].GetInt32()); // and bump() was rolled back
    }

    [Fact]
    public async Task An_access_block_applies_settings_and_a_non_streaming_endpoint_works_too()
    {
        var (client, p) = await fx.ProjectAsync();
        fx.Server.Enqueue("<sql>create table notes (id serial primary key, body text)</sql>\n<access table=\"notes\">{\"anon_select\": true}</access>");
        var session = fx.Session(p, new AssistantOptions
        {
            Endpoint = fx.Server.Endpoint, Model = AssistantFixture.Model, Stream = false,
        });
        var seen = fx.Server.Requests.Count;
        var reply = (await session.SendAsync("notes anyone can read", TestContext.Current.CancellationToken))!;
        Assert.False(fx.Server.Requests.Skip(seen).Single().Stream);
        Assert.Equal([BlockKind.Sql, BlockKind.Access], reply.Blocks!.Select(b => b.Kind));
        Assert.True(await session.RunAllAsync(reply, TestContext.Current.CancellationToken));
        var access = await client.GetFromJsonAsync<JsonElement>($"/api/projects/{p.Id}/tables/notes/access", TestContext.Current.CancellationToken);
        Assert.True(access.GetProperty("anon_select").GetBoolean());
        Assert.True(access.GetProperty("auth_insert").GetBoolean()); // keys left out keep their value (the secure default)

        // A bad access block is shown as the block's error, not thrown.
        var bad = AssistantSession.BlocksOf("<access table=\"notes\">{\"anon_delete\": true}</access>").Single();
        Assert.False(await session.RunBlockAsync(bad, ct: TestContext.Current.CancellationToken));
        Assert.Contains("Unknown access keys: anon_delete", bad.Error);
    }

    [Fact]
    public async Task The_context_endpoint_is_markdown_for_the_owner_only()
    {
        var (client, p) = await fx.ProjectAsync(Schema);
        var res = await client.GetAsync($"/api/projects/{p.Id}/assistant/context", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal("text/markdown", res.Content.Headers.ContentType!.MediaType);
        var md = await res.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains("### `posts`", md);
        Assert.Contains("| `author_id` | integer | references `authors`(id) |", md);
        Assert.Contains("// dbstudio-example: live", md);
        var stranger = await fx.NewUserClientAsync();
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/api/projects/{p.Id}/assistant/context", TestContext.Current.CancellationToken)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/projects/nosuchproject/assistant/context", TestContext.Current.CancellationToken)).StatusCode);
        var anonymous = fx.Factory.CreateClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"/api/projects/{p.Id}/assistant/context", TestContext.Current.CancellationToken)).StatusCode);
    }

    [Fact]
    public async Task The_model_key_is_never_logged_and_an_endpoint_error_is_shown_in_the_reply()
    {
        var capture = new DbStudio.Tests.Endpoints.CapturingLoggerProvider();
        await using var logged = new AppFactory(fx.App.Db.PlatformConnectionString, new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Debug",
            ["Logging:LogLevel:Microsoft"] = "Debug",
            ["Logging:LogLevel:System.Net.Http"] = "Debug",
            ["DbStudio:Assistant:Endpoint"] = fx.Server.Endpoint,
            ["DbStudio:Assistant:Model"] = AssistantFixture.Model,
            ["DbStudio:Assistant:ApiKey"] = AssistantFixture.ModelKey,
        }, s => s.AddSingleton<Microsoft.Extensions.Logging.ILoggerProvider>(capture));
        var (_, p) = await fx.ProjectAsync();
        T S<T>() where T : notnull => logged.Services.GetRequiredService<T>();
        var session = new AssistantSession(p.Id, p.RestUrl, S<AssistantChat>(), S<AssistantContext>(), S<Conversations>(), S<SqlConsole>(),
            S<DbStudio.Core.Access.AccessPolicies>(), S<Microsoft.Extensions.Options.IOptions<AssistantOptions>>(),
            Microsoft.Extensions.Logging.LoggerFactoryExtensions.CreateLogger<AssistantSession>(S<Microsoft.Extensions.Logging.ILoggerFactory>()));

        fx.Server.Enqueue("<sql>select 1</sql>");
        Assert.Equal("<sql>select 1</sql>", (await session.SendAsync("one", TestContext.Current.CancellationToken))!.Text);
        fx.Server.Enqueue(new ScriptedReply(["Incorrect API key provided"], Status: 401));
        var failed = (await session.SendAsync("two", TestContext.Current.CancellationToken))!;
        Assert.Contains("The model endpoint failed", failed.Failure);
        Assert.Contains("401", failed.Failure);
        Assert.DoesNotContain(AssistantFixture.ModelKey, failed.Failure);

        Assert.Contains(capture.Lines, l => l.Contains("The assistant's model endpoint failed"));
        Assert.DoesNotContain(capture.Lines, l => l.Contains(AssistantFixture.ModelKey));
        Assert.DoesNotContain(capture.Lines, l => l.Contains(p.AnonKey) || l.Contains(p.ApiKey));
    }
}
