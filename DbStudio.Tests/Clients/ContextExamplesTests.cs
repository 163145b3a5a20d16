// The examples of GET /api/projects/{id}/assistant/context run unchanged in Node against the app on its real port:
// only the ANON_KEY placeholder is replaced by the project's key. The helpers (signup, login, fetch CRUD), the live list
// with resume (EventSource), the postgrest-js client and the table's own usage example are taken from the Markdown as they are.
using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Clients;

public partial class ContextExamplesTests(TestApp app)
{
    [GeneratedRegex(@"```js\n(// dbstudio-example: (?<name>[^\n]+)\n.*?)```", RegexOptions.Singleline)]
    private static partial Regex Example();

    [Fact]
    public async Task The_context_examples_work_unchanged_in_node_against_the_app()
    {
        var platform = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(platform, "context examples");
        await TestApp.SqlAsync(platform, p.Id, "create table blog_posts (id serial primary key, title text not null, user_id uuid)");
        (await platform.PutAsJsonAsync($"/api/projects/{p.Id}/tables/blog_posts/access", new
        {
            anon_select = true, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true,
            auth_delete_own = true, user_id_col = "user_id",
        }, TestContext.Current.CancellationToken)).EnsureSuccessStatusCode();

        // Asked on the app's real address, so the URLs in the examples are ones Node can reach.
        using var real = new HttpClient { BaseAddress = app.BaseUrl };
        real.DefaultRequestHeaders.Authorization = platform.DefaultRequestHeaders.Authorization;
        var markdown = await real.GetStringAsync($"/api/projects/{p.Id}/assistant/context", TestContext.Current.CancellationToken);
        Assert.DoesNotContain(p.AnonKey, markdown);
        var examples = Example().Matches(markdown).ToDictionary(m => m.Groups["name"].Value, m => m.Groups[1].Value);
        Assert.Equal(["helpers", "live", "postgrest-js", "table blog_posts"], examples.Keys.Order());
        string Unchanged(string code) => code.Replace("'ANON_KEY'", $"'{p.AnonKey}'");

        var script = new StringBuilder("""
            import test from 'node:test';
            import assert from 'node:assert/strict';

            """);
        script.Append(Unchanged(examples["helpers"])).Append('\n').Append(Unchanged(examples["live"])).Append('\n')
            .Append(Unchanged(examples["postgrest-js"])).Append('\n');
        script.Append("test('the table example runs as written', { timeout: 30000 }, async () => {\n")
            .Append(Unchanged(examples["table blog_posts"])).Append("});\n");
        script.Append("""
            test('sign up, log in, CRUD and a live list that resumes where it left off', { timeout: 30000 }, async () => {
              const email = `node.${Date.now()}@example.com`;
              const session = await signUp(email, 'a long enough password');
              const again = await logIn(email, 'a long enough password');
              assert.equal(again.user.id, session.user.id);

              // A live list as anyone with the ANON key (the table is public to read).
              let changed;
              const next = () => new Promise(resolve => { changed = resolve; });
              let waiting = next();
              const live = liveList('blog_posts', (rows, change) => changed({ rows, change }));
              await new Promise(resolve => live.es.addEventListener('open', resolve, { once: true }));
              const [row] = await insert('blog_posts', { title: 'first' }, session);
              assert.equal(row.user_id, session.user.id);
              const first = await waiting;
              assert.equal(first.change.type, 'INSERT');
              assert.deepEqual(first.rows.map(r => r.title), ['first']);
              const resumeFrom = live.lastEventId;
              assert.ok(resumeFrom);
              live.close();

              // While the list is closed: another row and an edit. Reopened from the last id, both arrive.
              await insert('blog_posts', { title: 'while away' }, session);
              const [edited] = await update('blog_posts', `id=eq.${row.id}`, { title: 'edited' }, session);
              assert.equal(edited.title, 'edited');
              const types = [];
              let resumed;
              const caughtUp = new Promise(resolve => {
                resumed = liveList('blog_posts', (rows, change) => { types.push(change.type); if (types.length === 2) resolve(rows); },
                  { lastEventId: resumeFrom });
              });
              const rows = await caughtUp;
              resumed.close();
              assert.deepEqual(types, ['INSERT', 'UPDATE']);
              assert.deepEqual(rows.map(r => r.title).sort(), ['edited', 'while away']);

              assert.deepEqual((await list('blog_posts', 'select=title&order=id')).map(r => r.title), ['edited', 'while away']);
              await remove('blog_posts', `id=eq.${row.id}`, session);
              assert.deepEqual((await list('blog_posts', 'select=title&order=id')).map(r => r.title), ['while away']);
              await assert.rejects(insert('blog_posts', { title: 'anonymous' }), /401|403/); // anon may not insert
            });

            test('postgrest-js with the same credentials', { timeout: 30000 }, async () => {
              const session = await signUp(`pg.${Date.now()}@example.com`, 'a long enough password');
              const { data: created, error } = await db(session).from('blog_posts').insert({ title: 'from postgrest-js' }).select();
              assert.equal(error, null);
              assert.equal(created[0].user_id, session.user.id);
              const { data: publicRows } = await db().from('blog_posts').select('title').eq('id', created[0].id);
              assert.deepEqual(publicRows, [{ title: 'from postgrest-js' }]);
              assert.equal((await db(session).from('blog_posts').update({ title: 'changed' }).eq('id', created[0].id)).error, null);
              assert.equal((await db(session).from('blog_posts').delete().eq('id', created[0].id)).error, null);
              assert.deepEqual((await db().from('blog_posts').select('id').eq('id', created[0].id)).data, []);
            });
            """);
        // In the js folder, so `import '@supabase/postgrest-js'` finds its node_modules; removed afterwards.
        var file = Path.Combine(NodeScript.Folder(), $"context-examples-{p.Id}.test.mjs");
        await File.WriteAllTextAsync(file, script.ToString(), TestContext.Current.CancellationToken);
        try
        {
            // Node 20 has EventSource behind a flag (newer Node has it by default).
            var (exit, output) = await NodeScript.RunAsync(file, new() { ["NODE_OPTIONS"] = "--experimental-eventsource" });
            Assert.True(exit == 0, output + "\n--- script ---\n" + script);
            Assert.Contains("# pass 3", output);
            Assert.Contains("# fail 0", output);
        }
        finally { File.Delete(file); }
    }
}
